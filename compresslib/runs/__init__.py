"""The run lifecycle every job shares (``lifecycle.Run``): placement and precision, input facts, sessions, the
checkpoint and resume (``checkpoint``), outputs written last, and the typed record with its one format (``record``).
"""
