//! A pool's engine: the local one (shared-memory queues, workers on this
//! host) or the Redis one (a task stream any host's workers read).

use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use super::core::{Config, LocalCore};
use super::job::{Job, JobState};
#[cfg(feature = "redis")]
use super::remote::RedisCore;
use crate::Result;

/// What a pool's handles call.
#[derive(Debug)]
pub(crate) enum Core {
    Local(Arc<LocalCore>),
    #[cfg(feature = "redis")]
    Redis(Arc<RedisCore>),
}

macro_rules! both {
    ($self:ident, $core:ident => $e:expr) => {
        match $self {
            Core::Local($core) => $e,
            #[cfg(feature = "redis")]
            Core::Redis($core) => $e,
        }
    };
}

impl Core {
    pub(crate) fn start(config: Config) -> Result<Arc<Self>> {
        Ok(Arc::new(Core::Local(LocalCore::start(config)?)))
    }

    #[cfg(feature = "redis")]
    pub(crate) fn start_redis(config: Config, spec: super::remote::PoolSpec) -> Result<Arc<Self>> {
        Ok(Arc::new(Core::Redis(RedisCore::start(config, spec)?)))
    }

    pub(crate) fn config(&self) -> &Config {
        both!(self, c => &c.config)
    }

    pub(crate) fn backend(&self) -> &'static str {
        match self {
            Core::Local(_) => "local",
            #[cfg(feature = "redis")]
            Core::Redis(_) => "redis",
        }
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        both!(self, c => c.check_open())
    }

    pub(crate) fn submit(
        &self,
        job: &Arc<Job>,
        start: usize,
        count: u32,
        msg: Vec<u8>,
        cancellable: bool,
    ) -> Result<u64> {
        both!(self, c => c.submit(job, start, count, msg, cancellable))
    }

    pub(crate) fn cancel(&self, id: u64) -> bool {
        both!(self, c => c.cancel(id))
    }

    pub(crate) fn running(&self, id: u64) -> bool {
        both!(self, c => c.running(id))
    }

    pub(crate) fn cancellable_tasks(&self) -> Vec<u64> {
        both!(self, c => c.cancellable_tasks())
    }

    pub(crate) fn feeder(&self, starts: bool) {
        both!(self, c => c.feeder(starts))
    }

    pub(crate) fn close(&self) {
        both!(self, c => c.close())
    }

    pub(crate) fn terminate(&self) {
        both!(self, c => c.terminate())
    }

    pub(crate) fn join(&self, deadline: Option<Instant>) -> Result<bool> {
        both!(self, c => c.join(deadline))
    }

    pub(crate) fn pids(&self) -> Vec<u32> {
        both!(self, c => c.pids())
    }

    pub(crate) fn wait_job<'j>(
        &self,
        job: &'j Job,
        deadline: Option<Instant>,
        ready: impl FnMut(&mut JobState) -> bool,
    ) -> (MutexGuard<'j, JobState>, bool) {
        both!(self, c => c.wait_job(job, deadline, ready))
    }
}
