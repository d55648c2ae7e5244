"""Kiusys: counts confirmed reservation transactions per flight route."""
