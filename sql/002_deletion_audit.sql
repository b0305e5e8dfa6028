-- One row per processed user-data deletion (GDPR erasure). The subject is recorded as a hash so the
-- audit trail proves what was erased without keeping the identifier it erased.
CREATE TABLE corpus.deletion_audit (
    request_id      VARCHAR   NOT NULL,
    subject_sha256  VARCHAR   NOT NULL,  -- sha256 of the user/author id
    requested_by    VARCHAR,             -- API key id or operator, never a secret
    requested_at    TIMESTAMP,
    completed_at    TIMESTAMP NOT NULL,
    examples        BIGINT    NOT NULL,  -- distinct examples of the subject found
    rows_deleted    JSON      NOT NULL,  -- {table: rows}
    files_rewritten JSON      NOT NULL,  -- {path: lines removed}
    exports_removed JSON      NOT NULL,  -- export versions deleted because they held the subject's data
    export_version  VARCHAR              -- the export rebuilt without the subject
);
