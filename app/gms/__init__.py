"""Genesys Mobile Services-compatible services (seed 003)."""
