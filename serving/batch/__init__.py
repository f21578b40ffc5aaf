"""The batch scoring job: every active visitor scored, routed, written out and published."""
