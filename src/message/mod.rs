//! The message: header block, `-t` envelope rules, Bcc removal.
