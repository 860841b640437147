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
use crate::state::{Intent, Journal, OutcomeResult, Serial, StateError};

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
