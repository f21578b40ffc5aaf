"""The routing policy, pure: email, ads, a holdout or nothing per visitor, and what it buys."""
