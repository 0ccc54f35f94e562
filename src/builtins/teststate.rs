//! A minimal [`State`] for the catalogue-b unit tests (no interpreter behind it).

use super::{Host, State};
use crate::error::{Error, ErrorKind};
use crate::limits::Limits;
use crate::value::Value;

/// Default limits, a default [`Host`] (UTC, no records, no store), `env()` off.
#[derive(Default)]
pub struct TestState {
    pub host: Host,
    pub limits: Limits,
    pub env_allowed: bool,
}

impl State for TestState {
    fn call(&mut self, _callee: &Value, _args: &[Value]) -> Result<Value, Error> {
        Err(Error::new(
            ErrorKind::Runtime,
            "TestState cannot call functions",
        ))
    }
    fn fuel(&mut self, _n: u64) -> Result<(), Error> {
        Ok(())
    }
    fn check_size(&self, bytes: usize) -> Result<(), Error> {
        if bytes > self.limits.max_output {
            return Err(Error::new(ErrorKind::Limit, "string size limit exceeded"));
        }
        Ok(())
    }
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn host(&self) -> &Host {
        &self.host
    }
    fn env_allowed(&self) -> bool {
        self.env_allowed
    }
}
