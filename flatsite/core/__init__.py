"""Platform pieces every app uses: roles, accounts, storage paths, fault injection, template context."""
