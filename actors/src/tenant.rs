//! One actor per APP_ID: holds the tenant's [`Policy`] and tells the Router when it
//! changes. Started by the Router the first time the tenant is seen.

use std::sync::Arc;

use actix::prelude::*;

use crate::messages::{GetPolicy, PolicyChanged, SetPolicy};
use crate::{Policy, Router};

/// A tenant; see the module doc.
pub struct Tenant {
    name: Arc<str>,
    policy: Arc<Policy>,
    router: Addr<Router>,
}

impl Tenant {
    pub fn new(name: Arc<str>, policy: Policy, router: Addr<Router>) -> Self {
        Tenant {
            name,
            policy: Arc::new(policy),
            router,
        }
    }
}

impl Actor for Tenant {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::debug!(tenant = %self.name, "tenant started");
    }
}

impl Handler<GetPolicy> for Tenant {
    type Result = MessageResult<GetPolicy>;

    fn handle(&mut self, _: GetPolicy, _: &mut Self::Context) -> Self::Result {
        MessageResult(Policy::clone(&self.policy))
    }
}

impl Handler<SetPolicy> for Tenant {
    type Result = ();

    fn handle(&mut self, SetPolicy(policy): SetPolicy, _: &mut Self::Context) {
        self.policy = Arc::new(policy);
        self.router.do_send(PolicyChanged {
            tenant: self.name.clone(),
            policy: self.policy.clone(),
        });
    }
}
