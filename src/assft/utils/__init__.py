"""Small shared utilities: seeding, atomic writes, progress bars."""
