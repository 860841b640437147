//! One cloud mutation, done right: journaled before and after (write-ahead), retried by the
//! policy. Resource code calls [`journaled`] instead of the client directly, so every create and
//! delete follows the same rule:
//!
//! 1. append the [`Intent`] (address, action, client token, parameters without secrets) and
//!    fsync it: if cfxm dies after this, the next run sees the call as pending;
//! 2. make the call under [`retry`], the same request (same `ClientToken`) every attempt;
//! 3. append the [`OutcomeResult`]: the ids on success, the error class on failure.
//!
//! If step 1 fails, the call is not made. If step 3 fails, the call *was* made: the error says so
//! and carries the ids, and the intent stays pending in the journal, so the next run re-discovers.

use std::fmt;
use std::future::Future;

use miette::Diagnostic;
use thiserror::Error;

use super::executor::StepContext;
use super::retry::{Classify, Operation, RetryPolicy, Stopped, retry};
use crate::provider::resource::ProviderError;
use crate::state::{Address, ClientToken, Intent, Journal, OutcomeResult, Serial, StateError};

/// A journaled mutation that did not succeed.
#[derive(Debug, Error, Diagnostic)]
pub enum MutationError<E: fmt::Debug + fmt::Display + 'static> {
    /// The intent could not be recorded, so the call was not made.
    #[error("not calling `{action}`: {source}")]
    #[diagnostic(
        code(cfxm::apply::intent_not_recorded),
        help("cfxm records every cloud call before making it; fix the state directory and re-run")
    )]
    Intent {
        action: String,
        #[source]
        source: StateError,
    },
    /// The call failed for good (its outcome is journaled). `is_replan()` / `is_done()` on the
    /// inner value tell a stock-out or an already-gone resource from a real failure.
    #[error("{0}")]
    #[diagnostic(code(cfxm::apply::call_failed))]
    Call(Stopped<E>),
    /// The call was made (and succeeded with `ids`, or failed when `ids` is `None`), but its
    /// outcome could not be journaled.
    #[error("`{action}` was made but its outcome could not be recorded: {source}")]
    #[diagnostic(
        code(cfxm::apply::outcome_lost),
        help(
            "the journal keeps the call as pending; the next `cfxm apply` re-discovers its result by tags"
        )
    )]
    Outcome {
        action: String,
        ids: Option<Vec<String>>,
        #[source]
        source: StateError,
    },
}

/// Runs `call` as the mutation `intent` describes: intent journaled, call retried under
/// `policy`, outcome journaled. `ids` extracts the resource ids from a success for the journal.
/// Returns the call's value and the intent's serial.
///
/// ```text
/// let token = ClientToken::derive(&plan_scope, &address, batch);
/// let intent = Intent { address, action: "RunInstances".into(), client_token: Some(token.clone()),
///                       params: serde_json::to_value(&request_without_credentials)? };
/// let (ids, _) = journaled(&journal, intent, &policy, Operation::Create, Some(&ctx),
///                          |ids: &Vec<String>| ids.clone(),
///                          |_attempt| client.run_instances(&request, &token)).await?;
/// ```
pub async fn journaled<T, E, F, Fut, I>(
    journal: &Journal,
    intent: Intent,
    policy: &RetryPolicy,
    op: Operation,
    ctx: Option<&StepContext>,
    ids: I,
    call: F,
) -> Result<(T, Serial), MutationError<E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Classify + fmt::Debug + fmt::Display + 'static,
    I: FnOnce(&T) -> Vec<String>,
{
    let action = intent.action.clone();
    let serial = journal
        .intent(intent)
        .await
        .map_err(|source| MutationError::Intent {
            action: action.clone(),
            source,
        })?;
    match retry(policy, op, ctx, call).await {
        Ok(value) => {
            let ids = ids(&value);
            let result = OutcomeResult::Succeeded { ids: ids.clone() };
            match journal.outcome(serial, result).await {
                Ok(_) => Ok((value, serial)),
                Err(source) => Err(MutationError::Outcome {
                    action,
                    ids: Some(ids),
                    source,
                }),
            }
        }
        Err(stopped) => {
            let result = OutcomeResult::Failed {
                class: stopped.error.class().into(),
                error: stopped.to_string(),
            };
            match journal.outcome(serial, result).await {
                Ok(_) => Err(MutationError::Call(stopped)),
                Err(source) => Err(MutationError::Outcome {
                    action,
                    ids: None,
                    source,
                }),
            }
        }
    }
}

/// Why a reconciler step (a create, a delete, a hosts placement) failed: one line saying what
/// failed and, through the cloud error's advice, what to do.
#[derive(Debug, Error, Diagnostic)]
pub enum StepError {
    /// A journaled cloud mutation failed (or could not be journaled). Boxed, like the read
    /// below, so a `Result<_, StepError>` stays small on the success path.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Mutation(Box<MutationError<ProviderError>>),
    /// A cloud read failed for good.
    #[error("{0}")]
    #[diagnostic(code(cfxm::apply::read_failed))]
    Read(Box<Stopped<ProviderError>>),
    /// The state directory failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    State(#[from] StateError),
    /// Something the step checks itself: a limit, a shortfall, an answer that makes no sense.
    #[error("{message}")]
    #[diagnostic(code(cfxm::apply::step_failed), help("{help}"))]
    Failed { message: String, help: String },
    /// The apply was cancelled while the step waited.
    #[error("cancelled")]
    #[diagnostic(code(cfxm::apply::cancelled))]
    Cancelled,
}

impl StepError {
    pub fn failed(message: impl Into<String>, help: impl Into<String>) -> Self {
        StepError::Failed {
            message: message.into(),
            help: help.into(),
        }
    }

    /// The cloud call that stopped this step, if one did.
    pub fn call(&self) -> Option<&Stopped<ProviderError>> {
        match self {
            StepError::Mutation(m) => match m.as_ref() {
                MutationError::Call(s) => Some(s),
                _ => None,
            },
            StepError::Read(s) => Some(s),
            _ => None,
        }
    }

    /// A cloud call stopped because there is no capacity there: choose another placement.
    pub fn is_replan(&self) -> bool {
        matches!(self, StepError::Mutation(_)) && self.call().is_some_and(Stopped::is_replan)
    }

    /// A delete found the resource already gone.
    pub fn is_done(&self) -> bool {
        matches!(self, StepError::Mutation(_)) && self.call().is_some_and(Stopped::is_done)
    }

    /// The class of the cloud failure behind this error, if there is one.
    pub fn cloud_class(&self) -> Option<crate::provider::ErrorClass> {
        self.call().map(|s| s.error.class)
    }
}

impl From<MutationError<ProviderError>> for StepError {
    fn from(e: MutationError<ProviderError>) -> Self {
        StepError::Mutation(Box::new(e))
    }
}

impl From<Stopped<ProviderError>> for StepError {
    fn from(s: Stopped<ProviderError>) -> Self {
        StepError::Read(Box::new(s))
    }
}

/// What a provider needs to mutate the cloud the reconciler's way: the journal, the retry
/// policy, the step's context (progress, cancel), and the scope its client tokens derive from.
/// Providers make every mutating call through [`Mutations::call`].
#[derive(Clone, Copy)]
pub struct Mutations<'a> {
    pub journal: &'a Journal,
    pub policy: &'a RetryPolicy,
    /// Progress, retry events and cancellation; `None` outside an executor run.
    pub step: Option<&'a StepContext>,
    /// Where this apply's client tokens come from: `<spec>/<plan id>`. A re-run of the same
    /// plan step derives the same tokens; a new plan derives new ones.
    pub scope: &'a str,
    /// The resource the calls act on, as journaled.
    pub address: &'a Address,
}

impl fmt::Debug for Mutations<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutations")
            .field("scope", &self.scope)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Mutations<'_> {
    /// The deterministic token of the `generation`-th `action` call on this address.
    pub fn token(&self, action: &str, generation: u32) -> ClientToken {
        ClientToken::derive(
            &format!("{}/{action}", self.scope),
            self.address,
            generation,
        )
    }

    /// One journaled mutation: the intent (with `token` and `params`, never secrets) is
    /// durable before `call` runs; `call` is retried under the policy with the same request;
    /// the outcome (the ids `ids` extracts, or the error class) is recorded after.
    pub async fn call<T, F, Fut, I>(
        &self,
        action: &str,
        token: Option<ClientToken>,
        params: serde_json::Value,
        op: Operation,
        ids: I,
        call: F,
    ) -> Result<T, StepError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
        I: FnOnce(&T) -> Vec<String>,
    {
        let intent = Intent {
            address: self.address.clone(),
            action: action.to_owned(),
            client_token: token,
            params,
        };
        journaled(self.journal, intent, self.policy, op, self.step, ids, call)
            .await
            .map(|(v, _)| v)
            .map_err(StepError::from)
    }

    /// Sleeps, or returns [`StepError::Cancelled`] if the apply is cancelled meanwhile.
    pub async fn sleep(&self, duration: std::time::Duration) -> Result<(), StepError> {
        match self.step {
            Some(step) => step.sleep(duration).await.map_err(|_| StepError::Cancelled),
            None => {
                tokio::time::sleep(duration).await;
                Ok(())
            }
        }
    }

    /// Reports progress in words, when in a step.
    pub fn progress(&self, message: impl Into<String>) {
        if let Some(step) = self.step {
            step.progress(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::provider::ErrorClass;
    use crate::state::{Address, ClientToken, FailureClass};

    #[derive(Debug)]
    struct CloudError(ErrorClass, &'static str);

    impl Classify for CloudError {
        fn class(&self) -> ErrorClass {
            self.0
        }
    }

    impl fmt::Display for CloudError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.1)
        }
    }

    fn intent() -> Intent {
        Intent {
            address: Address::new("aliyun/ap-southeast-1/hosts").unwrap(),
            action: "RunInstances".into(),
            client_token: ClientToken::new("cfxm-abc-0"),
            params: json!({"Amount": 2}),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_intent_is_durable_before_the_call_and_the_outcome_after() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("journal.jsonl");
        let journal = Journal::open(&path).unwrap();
        // What the journal on disk held at each attempt, as a crash there would leave it.
        let seen = Mutex::new(Vec::new());
        let (ids, serial) = journaled(
            &journal,
            intent(),
            &RetryPolicy::default(),
            Operation::Create,
            None,
            |ids: &Vec<String>| ids.clone(),
            |attempt| {
                let log = crate::state::JournalLog::read(&path).unwrap();
                seen.lock().unwrap().push(log.pending_intents().len());
                async move {
                    if attempt == 1 {
                        Err(CloudError(ErrorClass::Transient, "InternalError"))
                    } else {
                        Ok(vec!["i-1".to_owned(), "i-2".to_owned()])
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(ids, ["i-1", "i-2"]);
        assert_eq!(
            *seen.lock().unwrap(),
            [1, 1],
            "pending during both attempts"
        );
        let log = crate::state::JournalLog::read(&path).unwrap();
        assert!(log.pending_intents().is_empty());
        assert_eq!(
            log.outcome_of(serial),
            Some(&OutcomeResult::Succeeded {
                ids: vec!["i-1".into(), "i-2".into()]
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_journaled_with_its_class() {
        let tmp = tempfile::tempdir().unwrap();
        let journal = Journal::open(&tmp.path().join("j")).unwrap();
        let err = journaled(
            &journal,
            intent(),
            &RetryPolicy::default(),
            Operation::Create,
            None,
            |_: &()| vec![],
            |_| async {
                Err(CloudError(
                    ErrorClass::NoCapacity,
                    "OperationDenied.NoStock",
                ))
            },
        )
        .await
        .unwrap_err();
        let MutationError::Call(stopped) = err else {
            panic!("{err:?}")
        };
        assert!(stopped.is_replan());
        let log = journal.log();
        assert_eq!(
            log.outcome_of(Serial(1)),
            Some(&OutcomeResult::Failed {
                class: FailureClass::NoCapacity,
                error: "OperationDenied.NoStock".into()
            })
        );
    }

    #[tokio::test]
    async fn no_call_is_made_when_the_intent_cannot_be_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let journal = Journal::open(&tmp.path().join("j")).unwrap();
        let mut bad = intent();
        bad.params = json!({"InstanceName": "x", "Password": "hunter2"});
        let called = Mutex::new(false);
        let err = journaled(
            &journal,
            bad,
            &RetryPolicy::default(),
            Operation::Create,
            None,
            |_: &()| vec![],
            |_| {
                *called.lock().unwrap() = true;
                async { Ok::<_, CloudError>(()) }
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, MutationError::Intent { .. }), "{err:?}");
        assert!(!*called.lock().unwrap());
        assert!(journal.log().entries().is_empty());
    }
}
