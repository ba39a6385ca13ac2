"""Jobs that run on training nodes; only these import torch and TRL."""
