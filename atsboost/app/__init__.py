"""The ATSBoost application's schema and data: models, passwords, the plan catalogue, seeding."""
