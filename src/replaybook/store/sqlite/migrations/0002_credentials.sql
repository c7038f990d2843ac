-- Named credentials. `data` is ciphertext made above the store (replaybook.credentials):
-- the store never holds a plaintext secret.
CREATE TABLE credentials (
    name       TEXT NOT NULL PRIMARY KEY,
    type       TEXT NOT NULL,
    data       BLOB NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
