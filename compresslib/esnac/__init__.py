"""ESNAC (Cao, Wang, Kitani, ICLR 2019): architecture space (space.py), learned kernel (kernel.py), search (search.py)."""
