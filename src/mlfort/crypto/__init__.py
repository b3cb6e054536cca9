"""Keys and cryptographic formats: signing keys now; envelope encryption and keyrings in later issues."""
