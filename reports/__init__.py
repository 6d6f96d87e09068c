"""Turns the evidence recorded by the claim tests into an HTML report."""
