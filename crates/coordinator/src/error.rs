//! The one error type of the HTTP API: every failure maps to a status and `{ "error", "detail" }`.

use api::wire::ErrorBody;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use engine::Rejection;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    Replay(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    /// A request body that came too slowly (see `routes::read_body`).
    #[error("{0}")]
    TooSlow(String),
    #[error("{0}")]
    InvalidModule(String),
    /// A GPU job's shader, or its buffers against the shader (rules 23).
    #[error("{0}")]
    InvalidShader(String),
    #[error("{0}")]
    Rejected(Rejection),
    #[error("{0}")]
    Conflict(String),
    /// The signer may not do this (another account's upload).
    #[error("{0}")]
    Forbidden(String),
    /// A byte range outside the blob.
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// What was asked for existed and was deleted for good: a job's output after its storage
    /// was released (rules 10).
    #[error("{0}")]
    Gone(String),
    /// A submission's storage claim does not match the blobs it names (rules 10).
    #[error("{0}")]
    StorageClaim(String),
    /// A report names an output that was never uploaded: accepting it would acknowledge (and
    /// pay for) a result whose output is lost.
    #[error("{0}")]
    MissingOutput(String),
    /// The coordinator could not make an accepted command durable; nothing was acknowledged.
    #[error("{0}")]
    Unavailable(String),
    /// Reads are shed first when the coordinator is busy: too many were already waiting for their
    /// turn. Answered with `Retry-After`; nothing was read or changed.
    #[error("{0}")]
    Overloaded(String),
    /// The client went over one of its rate limits (`limits`): `429` with `Retry-After`
    /// (`retry_after` seconds); nothing was read or changed.
    #[error("{detail}")]
    RateLimited { detail: String, retry_after: u64 },
    /// An upload over its sender's allowance of blobs that nothing names yet (`blob_quota`).
    #[error("{0}")]
    Quota(String),
    /// This validator is not the leader, which alone takes writes; `leader` is where it is, when
    /// known (also in the `x-gridmint-leader` header).
    #[error("this validator is not the leader{}", match leader { Some(l) => format!("; the leader is {l}"), None => "; no leader is elected right now, retry shortly".into() })]
    NotLeader { leader: Option<String> },
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::StaleNonce { .. } => ApiError::Replay(r.to_string()),
            Rejection::UnknownJob(_)
            | Rejection::UnknownProvider(_)
            | Rejection::UnknownProposal(_)
            | Rejection::UnknownReservation(_)
            | Rejection::NotBackable(_) => ApiError::NotFound(r.to_string()),
            other => ApiError::Rejected(other),
        }
    }
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::BadSignature(_) => (StatusCode::UNAUTHORIZED, "bad_signature"),
            ApiError::Replay(_) => (StatusCode::CONFLICT, "replayed"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::TooSlow(_) => (StatusCode::REQUEST_TIMEOUT, "too_slow"),
            ApiError::InvalidModule(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_module"),
            ApiError::InvalidShader(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_shader"),
            ApiError::Rejected(r) => match r {
                Rejection::InsufficientFunds { .. } | Rejection::FeeUnpaid { .. } => {
                    (StatusCode::PAYMENT_REQUIRED, "insufficient_funds")
                }
                Rejection::InsufficientStake { .. } => {
                    (StatusCode::PAYMENT_REQUIRED, "insufficient_stake")
                }
                Rejection::FaucetDisabled => (StatusCode::FORBIDDEN, "faucet_disabled"),
                Rejection::FaucetRefused(_) => (StatusCode::TOO_MANY_REQUESTS, "faucet_refused"),
                Rejection::StakeLocked(_) => (StatusCode::CONFLICT, "stake_locked"),
                Rejection::InvalidAmount(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_amount"),
                Rejection::StorageUnclaimed => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "storage_unclaimed")
                }
                Rejection::StorageHeld(_) => (StatusCode::CONFLICT, "storage_held"),
                Rejection::InvalidProposal(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_proposal")
                }
                Rejection::InvalidCommission(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_commission")
                }
                Rejection::NotDelegated { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "not_delegated")
                }
                Rejection::InvalidReservation(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_reservation")
                }
                Rejection::NotReservationOwner(_) => (StatusCode::FORBIDDEN, "not_owner"),
                Rejection::InvalidClassCheck(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_class_check")
                }
                _ => (StatusCode::UNPROCESSABLE_ENTITY, "rejected"),
            },
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::RangeNotSatisfiable(_) => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            ApiError::Gone(_) => (StatusCode::GONE, "storage_released"),
            ApiError::StorageClaim(_) => (StatusCode::UNPROCESSABLE_ENTITY, "storage_claim"),
            ApiError::MissingOutput(_) => (StatusCode::UNPROCESSABLE_ENTITY, "output_missing"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Quota(_) => (StatusCode::PAYLOAD_TOO_LARGE, "blob_quota"),
            ApiError::NotLeader { .. } => (StatusCode::SERVICE_UNAVAILABLE, "not_leader"),
        }
    }
}

impl ApiError {
    /// The JSON body this error is answered with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.parts().1.to_string(),
            detail: self.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.parts();
        let mut response = (status, axum::Json(self.body())).into_response();
        if let ApiError::NotLeader {
            leader: Some(leader),
        } = &self
            && let Ok(value) = axum::http::HeaderValue::from_str(leader)
        {
            response
                .headers_mut()
                .insert(api::wire::HEADER_LEADER, value);
        }
        if let ApiError::Overloaded(_) = &self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_READS_AFTER),
            );
        }
        if let ApiError::RateLimited { retry_after, .. } = &self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*retry_after),
            );
        }
        response
    }
}

/// `Retry-After` of a shed read, in seconds.
pub const RETRY_READS_AFTER: &str = "1";
