"""Campaign measurement: contacted visitors against their holdout, on what they did next."""
