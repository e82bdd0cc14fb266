"""Token-encryption keys for the tests that build or start the production wiring (PostgreSQL, Redis).

Fixed, so that every process a test starts and every adapter it builds read each other's rows.
They protect nothing: they exist only for tests.
"""

from __future__ import annotations

from adapters.crypto import FernetTokenCipher

TEST_TOKEN_KEY = "h_E-mSNLP8nrjC-e0wV-GPmegz8vo3e66vK7Kx7NY4Y="
#: A second key, for rotation and wrong-key tests.
OTHER_TOKEN_KEY = "uOicSypWXTKyeokW9M4bb1_j1w7xey-UrqaYhcsa7bA="

TEST_CIPHER = FernetTokenCipher([TEST_TOKEN_KEY])
