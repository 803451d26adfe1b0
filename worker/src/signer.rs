//! `private_key_jwt` client authentication (RFC 7523 §2.2) for the worker's own upstream
//! client: the configured P-256 key imported into the runtime's WebCrypto once per isolate as a
//! non-extractable `CryptoKey`, the core's [`JwsSigner`] over `crypto.subtle.sign`, and one
//! function every token-endpoint and revocation request goes through.

use core::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use edge_oauth_core::env::OsRandom;
use edge_oauth_core::grants::{client_assertion, with_client_assertion};
use edge_oauth_core::jws::{JwsAlgorithm, JwsSigner, PublicJwk, SignatureFuture};
use edge_oauth_core::registration::TokenEndpointAuthMethod;
use edge_oauth_core::{Error, HttpRequest};
use worker::js_sys::{self, Array, Object, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{CryptoKey, EcKeyImportParams, EcdsaParams, SubtleCrypto, WorkerGlobalScope};

use crate::config::{AssertionKey, Provider};
use crate::error::ProxyError;
use crate::fetch::WorkerClock;

thread_local! {
    /// Imported keys by provider name, for this isolate's configuration.
    static SIGNERS: RefCell<BTreeMap<String, Rc<WebCryptoSigner>>> = const { RefCell::new(BTreeMap::new()) };
}

fn crypto_error(_: JsValue) -> ProxyError {
    // WebCrypto's messages do not quote key material, but neither is needed here.
    ProxyError::Internal {
        what: "WebCrypto (client assertion key)",
    }
}

fn subtle() -> Result<SubtleCrypto, ProxyError> {
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    Ok(scope.crypto().map_err(crypto_error)?.subtle())
}

/// An ES256 key held by WebCrypto, which never hands the private half back: the client
/// assertion key here, and the backend-for-frontend's per-session DPoP key (`dpop_key`).
pub struct WebCryptoSigner {
    key: CryptoKey,
    public: PublicJwk,
    kid: Option<String>,
}

impl WebCryptoSigner {
    /// A signer over a non-extractable ECDSA P-256 `key` whose public half is `public`.
    pub fn new(key: CryptoKey, public: PublicJwk, kid: Option<String>) -> Self {
        Self { key, public, kid }
    }

    /// Imports `key` as a non-extractable ECDSA P-256 signing key.
    pub async fn import(key: &AssertionKey) -> Result<Self, ProxyError> {
        let jwk = Object::new();
        for (name, value) in key.private_jwk() {
            if let Some(s) = value.as_str() {
                Reflect::set(&jwk, &JsValue::from_str(name), &JsValue::from_str(s))
                    .map_err(crypto_error)?;
            }
        }
        let params = EcKeyImportParams::new("ECDSA");
        params.set_named_curve("P-256");
        let usages = Array::of1(&"sign".into());
        let promise = subtle()?
            .import_key_with_object("jwk", &jwk, &params, false, &usages)
            .map_err(crypto_error)?;
        let key_object: CryptoKey = JsFuture::from(promise)
            .await
            .map_err(crypto_error)?
            .unchecked_into();
        Ok(Self {
            key: key_object,
            public: key.public.clone(),
            kid: key.kid.clone(),
        })
    }
}

impl JwsSigner for WebCryptoSigner {
    fn algorithm(&self) -> JwsAlgorithm {
        JwsAlgorithm::Es256
    }

    fn public_jwk(&self) -> PublicJwk {
        self.public.clone()
    }

    fn key_id(&self) -> Option<String> {
        self.kid.clone()
    }

    fn sign<'a>(&'a self, signing_input: &'a [u8]) -> SignatureFuture<'a> {
        Box::pin(async move {
            let failed = |_| Error::Signing {
                message: "WebCrypto refused to sign".to_owned(),
            };
            let params = EcdsaParams::new_with_str("ECDSA", "SHA-256");
            let promise = subtle()
                .map_err(|_| Error::Signing {
                    message: "no WebCrypto in this runtime".to_owned(),
                })?
                .sign_with_object_and_u8_array(&params, &self.key, signing_input)
                .map_err(failed)?;
            let signature = JsFuture::from(promise).await.map_err(failed)?;
            // WebCrypto's ECDSA signature is IEEE P1363 r || s, which is what JWS wants.
            Ok(Uint8Array::new(&signature).to_vec())
        })
    }
}

async fn signer(
    provider: &Provider,
    key: &AssertionKey,
) -> Result<Rc<WebCryptoSigner>, ProxyError> {
    if let Some(s) = SIGNERS.with(|m| m.borrow().get(&provider.name).cloned()) {
        return Ok(s);
    }
    let imported = Rc::new(WebCryptoSigner::import(key).await?);
    SIGNERS.with(|m| {
        m.borrow_mut()
            .insert(provider.name.clone(), imported.clone())
    });
    Ok(imported)
}

/// Completes the client authentication of a token-endpoint or revocation request the core
/// built for `provider.client`: for `private_key_jwt`, a fresh client assertion (one `jti`
/// per request) signed with the configured key; the secret methods are already in `request`.
pub async fn authenticate(
    provider: &Provider,
    request: HttpRequest,
) -> Result<HttpRequest, ProxyError> {
    if provider.client.auth_method != TokenEndpointAuthMethod::PrivateKeyJwt {
        return Ok(request);
    }
    let key = provider
        .assertion_key
        .as_ref()
        .ok_or_else(|| ProxyError::Misconfigured {
            problem: format!(
                "provider {:?} has no private key for private_key_jwt",
                provider.name
            ),
        })?;
    let signer = signer(provider, key).await?;
    let assertion = client_assertion(
        signer.as_ref(),
        &provider.client.client_id,
        &provider.client.issuer,
        &WorkerClock,
        &OsRandom,
    )
    .await
    .map_err(|_| ProxyError::Internal {
        what: "signing the client assertion",
    })?;
    Ok(with_client_assertion(request, &assertion))
}

/// Verifies the signature of a proof [`crate::dpop::check_proof`] accepted, with the public key
/// it carries (which `check_proof` matched to the session's thumbprint).
pub async fn verify_proof_signature(proof: &crate::dpop::CheckedProof) -> Result<(), ProxyError> {
    let bad = |_| ProxyError::InvalidDpopProof;
    let jwk = Object::new();
    for (name, value) in &proof.jwk {
        if let Some(s) = value.as_str() {
            Reflect::set(&jwk, &JsValue::from_str(name), &JsValue::from_str(s)).map_err(bad)?;
        }
    }
    let (import, verify): (Object, Object) = match proof.alg {
        "ES256" => {
            let import = EcKeyImportParams::new("ECDSA");
            import.set_named_curve("P-256");
            (
                import.into(),
                EcdsaParams::new_with_str("ECDSA", "SHA-256").into(),
            )
        }
        _ => {
            let import = Object::new();
            Reflect::set(&import, &"name".into(), &"RSASSA-PKCS1-v1_5".into()).map_err(bad)?;
            Reflect::set(&import, &"hash".into(), &"SHA-256".into()).map_err(bad)?;
            let verify = Object::new();
            Reflect::set(&verify, &"name".into(), &"RSASSA-PKCS1-v1_5".into()).map_err(bad)?;
            (import, verify)
        }
    };
    let subtle = subtle()?;
    let usages = Array::of1(&"verify".into());
    let key: CryptoKey = JsFuture::from(
        subtle
            .import_key_with_object("jwk", &jwk, &import, false, &usages)
            .map_err(bad)?,
    )
    .await
    .map_err(bad)?
    .unchecked_into();
    let valid = JsFuture::from(
        subtle
            .verify_with_object_and_u8_array_and_u8_array(
                &verify,
                &key,
                &proof.signature,
                proof.signing_input.as_bytes(),
            )
            .map_err(bad)?,
    )
    .await
    .map_err(bad)?;
    if valid.as_bool() == Some(true) {
        Ok(())
    } else {
        Err(ProxyError::InvalidDpopProof)
    }
}
