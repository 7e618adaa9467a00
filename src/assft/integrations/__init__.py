"""Integrations with other tools. Nothing in assft's core imports this package; each integration is an optional extra
(`pip install "assft[monailabel]"`) and imports its tool only inside its own modules."""
