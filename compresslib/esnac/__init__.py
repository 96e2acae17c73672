"""ESNAC (Cao, Wang, Kitani, ICLR 2019): the architecture space (space.py), the learned kernel (kernel.py) and
the search (search.py)."""
