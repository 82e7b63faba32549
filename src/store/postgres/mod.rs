//! The PostgreSQL backend (a placeholder: the next commit fills it in).

use super::{Db, StoreError};

#[derive(Clone)]
pub struct PgStore {}

impl PgStore {
    pub fn open(_url: &str) -> Result<PgStore, StoreError> {
        Err(StoreError::Unsupported("PostgreSQL"))
    }

    pub fn read<T, E>(&self, _f: impl FnMut(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        Err(StoreError::Unsupported("PostgreSQL").into())
    }

    pub fn write<T, E>(&self, _f: impl FnMut(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        Err(StoreError::Unsupported("PostgreSQL").into())
    }
}
