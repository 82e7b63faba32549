//! SQL for access keys, submodules and namespace-wide key listings.
