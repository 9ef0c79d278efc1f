//! The VM backend (in progress): see src/vm/README or the module docs.
