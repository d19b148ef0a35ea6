"""Medical concept extraction (terminology, matching, assertion)."""
