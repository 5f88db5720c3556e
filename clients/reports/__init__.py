"""The KPI report and the exports rendered for people and spreadsheets (issue 17, items 3 and 5; ADR 0028)."""
