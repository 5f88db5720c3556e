"""The web app's pages, one module per kind of person: reviewer, applicant, officer (officers and ops)."""
