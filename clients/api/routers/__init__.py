"""One router per resource: exchanges (and their messages), evidence, reviews, budgets, policy, probes."""
