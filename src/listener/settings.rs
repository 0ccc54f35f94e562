//! Per-endpoint cache of the rendered settings fields (`endpoint_key`, `endpoint_secret`,
//! `cors_domains`, the `[endpoint.signature]` secret). They see no request data, only the configuration and `env()`, so they are
//! rendered on the first request that needs them and kept for the life of the loaded
//! configuration: a reload builds new endpoints, hence a fresh cache. A render failure is not
//! kept (every request retries it, logs it and answers 500, as without the cache).

use super::auth::Verifier;
use super::cors::CorsPolicy;
use super::request::DataNeeds;
use std::sync::{Arc, OnceLock};

/// Rendered settings of one endpoint. Cloning gives an empty cache.
#[derive(Default)]
pub struct SettingsCache {
    auth: OnceLock<Arc<Verifier>>,
    cors: OnceLock<Arc<CorsPolicy>>,
    signature_key: OnceLock<Arc<Vec<u8>>>,
    /// The parts of `__data` the answer reads (`None`: all of them).
    data_needs: OnceLock<Option<DataNeeds>>,
}

impl Clone for SettingsCache {
    fn clone(&self) -> Self {
        SettingsCache::default()
    }
}

impl std::fmt::Debug for SettingsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsCache").finish_non_exhaustive()
    }
}

/// The cached value, or `make()`'s result, kept when it succeeded.
fn get_or_try<T, E>(
    cell: &OnceLock<Arc<T>>,
    make: impl FnOnce() -> Result<T, E>,
) -> Result<Arc<T>, E> {
    if let Some(v) = cell.get() {
        return Ok(v.clone());
    }
    let v = Arc::new(make()?);
    // A concurrent first request may have won the race: both values are equal.
    Ok(cell.get_or_init(|| v).clone())
}

impl SettingsCache {
    /// The token verifier built from the rendered key and secret.
    pub fn verifier<E>(
        &self,
        make: impl FnOnce() -> Result<Verifier, E>,
    ) -> Result<Arc<Verifier>, E> {
        get_or_try(&self.auth, make)
    }
    /// The CORS policy parsed from the rendered `cors_domains`.
    pub fn cors<E>(
        &self,
        make: impl FnOnce() -> Result<CorsPolicy, E>,
    ) -> Result<Arc<CorsPolicy>, E> {
        get_or_try(&self.cors, make)
    }
    /// The parts of `__data` to build for a request (`make` runs once; `None`: all).
    pub fn data_needs(&self, make: impl FnOnce() -> Option<DataNeeds>) -> Option<&DataNeeds> {
        self.data_needs.get_or_init(make).as_ref()
    }
    /// The HMAC key of `[endpoint.signature]`, from its rendered secret.
    pub fn signature_key<E>(
        &self,
        make: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Arc<Vec<u8>>, E> {
        get_or_try(&self.signature_key, make)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_retried_successes_kept() {
        let cache = SettingsCache::default();
        let mut calls = 0;
        let r: Result<_, ()> = cache.cors(|| {
            calls += 1;
            Err(())
        });
        assert!(r.is_err());
        let r: Result<_, ()> = cache.cors(|| {
            calls += 1;
            Ok(CorsPolicy::parse("https://a.example"))
        });
        assert_eq!(*r.unwrap(), CorsPolicy::parse("https://a.example"));
        let r: Result<_, ()> = cache.cors(|| {
            calls += 1;
            Ok(CorsPolicy::parse("https://other.example"))
        });
        assert_eq!(*r.unwrap(), CorsPolicy::parse("https://a.example"));
        assert_eq!(calls, 2);
        // A clone (as a reload would build) starts empty.
        assert!(cache.clone().cors.get().is_none());
    }
}
