"""The class command's parts (`python -m reports.grade`): the folder, the claims' plan, limited sessions, the table."""
