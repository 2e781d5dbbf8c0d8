//! The one driver of model operations, for blocking and async engines alike.
//!
//! A model operation (encrypt models, decrypt records, look a value up…) is a
//! [`Plan`]: a small state machine that asks for engine calls and consumes their
//! answers, with no I/O of its own. [`run`] executes a plan on a blocking engine, one
//! call after the other; [`run_async`] on an async engine, the calls of one step at
//! once (a remote engine then decrypts every column of a page concurrently). Adding a
//! model operation means writing its plan once.

use crate::HashAlgorithm;
use crate::ciphertext::Ciphertext;
use crate::engine::{AsyncTransitEngine, DecryptItem, EncryptItem, HmacItem, HmacTag, RewrapItem, TransitEngine};
use crate::error::{Error, Result};
use crate::keyring::{KeyInfo, KeyOptions};
use crate::name::KeyName;
use crate::secret::Plaintext;

/// One engine call a plan needs.
pub(crate) enum EngineCall {
    Encrypt(KeyName, Vec<EncryptItem>),
    Decrypt(KeyName, Vec<DecryptItem>),
    Rewrap(KeyName, Vec<RewrapItem>),
    /// Blind indexes: HMAC-SHA256.
    Hmac(KeyName, Vec<HmacItem>),
    ReadKey(KeyName),
    CreateKey(KeyName, KeyOptions),
    /// A call whose failure the plan can live with: answered [`EngineAnswer::Failed`]
    /// instead of failing the plan (upgrades on read are worth trying, not required).
    Tolerant(Box<EngineCall>),
}

/// The answer to an [`EngineCall`], same position.
pub(crate) enum EngineAnswer {
    Sealed(Vec<Result<Ciphertext>>),
    Opened(Vec<Result<Plaintext>>),
    Tagged(Vec<Result<HmacTag>>),
    Key(KeyInfo),
    /// A [`EngineCall::Tolerant`] call failed.
    Failed,
}

/// What a plan wants next.
pub(crate) enum Step<T> {
    /// These calls, answered in order, then [`Plan::step`] again.
    Call(Vec<EngineCall>),
    Done(T),
}

/// A model operation without I/O.
pub(crate) trait Plan {
    type Output;

    /// Advances the plan with the answers to the calls it asked for last (none on the
    /// first step).
    fn step(&mut self, answers: Vec<EngineAnswer>) -> Result<Step<Self::Output>>;
}

/// Executes `plan` on a blocking engine.
pub(crate) fn run<P: Plan, E: TransitEngine + ?Sized>(mut plan: P, engine: &E) -> Result<P::Output> {
    let mut answers = Vec::new();
    loop {
        match plan.step(answers)? {
            Step::Done(output) => return Ok(output),
            Step::Call(calls) => {
                answers = calls
                    .into_iter()
                    .map(|call| answer(engine, call))
                    .collect::<Result<_>>()?;
            }
        }
    }
}

/// Executes `plan` on an async engine: the calls of each step concurrently.
pub(crate) async fn run_async<P: Plan, E: AsyncTransitEngine + ?Sized>(mut plan: P, engine: &E) -> Result<P::Output> {
    let mut answers = Vec::new();
    loop {
        match plan.step(answers)? {
            Step::Done(output) => return Ok(output),
            Step::Call(calls) => {
                let pending: Vec<_> = calls.into_iter().map(|call| answer_async(engine, call)).collect();
                answers = futures_util::future::try_join_all(pending).await?;
            }
        }
    }
}

fn answer<E: TransitEngine + ?Sized>(engine: &E, call: EngineCall) -> Result<EngineAnswer> {
    Ok(match call {
        EngineCall::Encrypt(key, items) => {
            EngineAnswer::Sealed(counted(items.len(), engine.encrypt_batch(&key, items)?)?)
        }
        EngineCall::Decrypt(key, items) => {
            EngineAnswer::Opened(counted(items.len(), engine.decrypt_batch(&key, items)?)?)
        }
        EngineCall::Rewrap(key, items) => {
            EngineAnswer::Sealed(counted(items.len(), engine.rewrap_batch(&key, items)?)?)
        }
        EngineCall::Hmac(key, items) => EngineAnswer::Tagged(counted(
            items.len(),
            engine.hmac_batch(&key, HashAlgorithm::Sha2_256, items)?,
        )?),
        EngineCall::ReadKey(key) => EngineAnswer::Key(engine.read_key(&key)?),
        EngineCall::CreateKey(key, options) => EngineAnswer::Key(engine.create_key(&key, options)?),
        EngineCall::Tolerant(call) => answer(engine, *call).unwrap_or(EngineAnswer::Failed),
    })
}

async fn answer_async<E: AsyncTransitEngine + ?Sized>(engine: &E, call: EngineCall) -> Result<EngineAnswer> {
    Ok(match call {
        EngineCall::Encrypt(key, items) => {
            let len = items.len();
            EngineAnswer::Sealed(counted(len, engine.encrypt_batch_async(&key, items).await?)?)
        }
        EngineCall::Decrypt(key, items) => {
            let len = items.len();
            EngineAnswer::Opened(counted(len, engine.decrypt_batch_async(&key, items).await?)?)
        }
        EngineCall::Rewrap(key, items) => {
            let len = items.len();
            EngineAnswer::Sealed(counted(len, engine.rewrap_batch_async(&key, items).await?)?)
        }
        EngineCall::Hmac(key, items) => {
            let len = items.len();
            EngineAnswer::Tagged(counted(
                len,
                engine.hmac_batch_async(&key, HashAlgorithm::Sha2_256, items).await?,
            )?)
        }
        EngineCall::ReadKey(key) => EngineAnswer::Key(engine.read_key_async(&key).await?),
        EngineCall::CreateKey(key, options) => EngineAnswer::Key(engine.create_key_async(&key, options).await?),
        EngineCall::Tolerant(call) => Box::pin(answer_async(engine, *call))
            .await
            .unwrap_or(EngineAnswer::Failed),
    })
}

/// An engine that returns a different number of results than items is broken: fail
/// the whole call rather than pair results with the wrong rows.
fn counted<T>(expected: usize, results: Vec<T>) -> Result<Vec<T>> {
    if results.len() == expected {
        Ok(results)
    } else {
        Err(Error::invalid(
            "engine returned a different number of results than items",
        ))
    }
}

/// The answer a plan expected, or an error saying the answers do not match the plan.
pub(crate) fn mismatch() -> Error {
    Error::invalid("engine answers do not match the plan")
}
