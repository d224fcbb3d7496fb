"""Check types: each turns one configured check into one Reading."""
