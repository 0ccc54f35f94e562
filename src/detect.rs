//! Content-type detection of rendered `data` bodies (listener.md §6). OWNER: listener helper.
