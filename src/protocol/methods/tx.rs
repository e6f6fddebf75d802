//! Class `tx` (90).

method!(Select {});
method!(SelectOk {});
method!(Commit {});
method!(CommitOk {});
method!(Rollback {});
method!(RollbackOk {});
