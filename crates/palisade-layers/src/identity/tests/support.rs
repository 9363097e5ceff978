//! What the tests share: the published keys and tokens, token signing, and a real HTTP server
//! for JWK Sets.
//!
//! The keys and tokens are copied from RFC 7515 Appendix A.1–A.3 and RFC 8037 Appendix A.1 and
//! A.4. They were checked with an independent implementation (pyca/cryptography) before being
//! used: the HMAC, RSA PKCS#1 v1.5 and Ed25519 signatures are reproduced byte for byte from the
//! private keys, the EC public key is derived from its `d`, and the ECDSA signature verifies.
//! The PEM texts are the same public keys in SubjectPublicKeyInfo and PKCS#1 form, written by
//! that implementation.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::super::{JwtRules, JwtVerifier, KeySet};

/// The payload of RFC 7515 A.1–A.3: `{"iss":"joe",\r\n "exp":1300819380,\r\n
/// "http://example.com/is_root":true}`.
pub const RFC_PAYLOAD: &str = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
/// The `exp` of that payload.
pub const RFC_EXP: u64 = 1_300_819_380;

/// RFC 7515 A.1: the HMAC key (`k` of the JWK) and the HS256 token.
pub const A1_K: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
pub const A1_HEADER: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9";
pub const A1_SIGNATURE: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// RFC 7515 A.2: the RSA key and the RS256 signature.
pub const A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
pub const A2_E: &str = "AQAB";
const A2_D: &str = "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ";
const A2_P: &str = "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc";
const A2_Q: &str = "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc";
const A2_DP: &str = "BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0";
const A2_DQ: &str = "h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU";
const A2_QI: &str = "IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U";
pub const A2_HEADER: &str = "eyJhbGciOiJSUzI1NiJ9";
pub const A2_SIGNATURE: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

/// RFC 7515 A.3: the P-256 key and the ES256 signature.
pub const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
pub const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
const A3_D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
pub const A3_HEADER: &str = "eyJhbGciOiJFUzI1NiJ9";
pub const A3_SIGNATURE: &str =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

/// RFC 8037 A.1: the Ed25519 key; A.4: the JWS of "Example of Ed25519 signing".
pub const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const ED_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
pub const ED_JWS: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

/// The A.2 RSA public key as SubjectPublicKeyInfo.
pub const RSA_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAofgWCuLjybRlzo0tZWJj
NiuSfb4p4fAkd/wWJcyQoTbji9k0l8W26mPddxHmfHQp+Vaw+4qPCJrcS2mJPMEz
P1Pt0Bm4d4QlL+yRT+SFd2lZS+pCgNMsD1W/YpRPEwOWvG6b32690r2jZ47soMZo
9wGzjb/7OMg0LOL+bSf63kpaSHSXndS5z5rexMdbBYUsLA9e+KXBdQOS+UTo7WTB
EMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6/I5IhlJH7aGhyxX
FvUK+DWNmoudF8NAco9/h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXp
oQIDAQAB
-----END PUBLIC KEY-----
";

/// The A.2 RSA public key as PKCS#1.
pub const RSA_PKCS1_PEM: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd/wWJcyQoTbji9k0l8W2
6mPddxHmfHQp+Vaw+4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL+yRT+SFd2lZS+pCgNMs
D1W/YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb/7OMg0LOL+bSf63kpaSHSXndS5
z5rexMdbBYUsLA9e+KXBdQOS+UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxv
b3qCo5ZwKh9kG4LT6/I5IhlJH7aGhyxXFvUK+DWNmoudF8NAco9/h9iaGNj8q2et
hFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQIDAQAB
-----END RSA PUBLIC KEY-----
";

/// The A.3 P-256 public key.
pub const EC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV7
6e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==
-----END PUBLIC KEY-----
";

/// The RFC 8037 Ed25519 public key.
pub const ED_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=
-----END PUBLIC KEY-----
";

/// A P-384 public key generated for these tests (its private key was not kept).
pub const P384_PEM: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEzAkXqjGDQJp7P0aWYuQAom99cMUzS6G/
e6HtWBdEg83KzkwJ0OD28jKZWpSGPy0IrrhPk+/JyUhsbxT9XXZnVDRgiowZBzkU
yteb82U+YzuHcaLqifn1NSY6R6x+nwmh
-----END PUBLIC KEY-----
";

/// A secp256k1 public key generated for these tests: a curve that is not supported.
pub const K256_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAERV3TbUHo4FH9eovOOxUBcnKB8Dn1U9C3
e5aKEh0udyumQTuQhBjpcXoM2l6G9BQWbV8M6uB0nCrcJB8EI1Lmeg==
-----END PUBLIC KEY-----
";

/// The time of the tests' own tokens, and their expiry ten minutes later.
pub const NOW: u64 = 1_700_000_000;
pub const EXP: u64 = NOW + 600;

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url in a test vector")
}

/// `header.payload.signature` with `key`, for any JSON header and claims (no field is added).
pub fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("signs");
    format!("{input}.{signature}")
}

/// Claims that pass the default rules at [`NOW`].
pub fn claims() -> Value {
    json!({ "sub": "alice", "exp": EXP })
}

/// The A.2 key as a signer. jsonwebtoken takes a PKCS#1 DER private key, written here from
/// the RFC's JWK members.
pub fn rsa_signer() -> EncodingKey {
    let ints = [
        vec![0],
        unb64(A2_N),
        unb64(A2_E),
        unb64(A2_D),
        unb64(A2_P),
        unb64(A2_Q),
        unb64(A2_DP),
        unb64(A2_DQ),
        unb64(A2_QI),
    ];
    let body: Vec<u8> = ints.iter().flat_map(|i| der_uint(i)).collect();
    EncodingKey::from_rsa_der(&der(0x30, &body))
}

/// The A.3 key as a signer: PKCS#8 around an RFC 5915 ECPrivateKey.
pub fn ec_signer() -> EncodingKey {
    let ec_private_key = der(0x30, &[der(0x02, &[1]), der(0x04, &unb64(A3_D))].concat());
    let algorithm = der(
        0x30,
        &[
            der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]),
            der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
        ]
        .concat(),
    );
    let pkcs8 = der(
        0x30,
        &[der(0x02, &[0]), algorithm, der(0x04, &ec_private_key)].concat(),
    );
    EncodingKey::from_ec_der(&pkcs8)
}

/// The RFC 8037 key as a signer: PKCS#8 of RFC 8410.
pub fn ed_signer() -> EncodingKey {
    let seed = der(0x04, &unb64(ED_D));
    let algorithm = der(0x30, &der(0x06, &[0x2b, 0x65, 0x70]));
    let pkcs8 = der(
        0x30,
        &[der(0x02, &[0]), algorithm, der(0x04, &seed)].concat(),
    );
    EncodingKey::from_ed_der(&pkcs8)
}

pub fn hmac_signer() -> EncodingKey {
    EncodingKey::from_secret(&unb64(A1_K))
}

fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![tag];
    match len {
        0..0x80 => out.push(len as u8),
        0x80..0x100 => out.extend([0x81, len as u8]),
        _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    out.extend_from_slice(contents);
    out
}

fn der_uint(magnitude: &[u8]) -> Vec<u8> {
    let start = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len());
    let mut bytes = magnitude[start..].to_vec();
    if bytes.first().is_none_or(|b| b & 0x80 != 0) {
        bytes.insert(0, 0);
    }
    der(0x02, &bytes)
}

/// The public JWKs of the RFC keys, with a `kid`.
pub fn rsa_jwk(kid: &str) -> Value {
    json!({ "kty": "RSA", "kid": kid, "n": A2_N, "e": A2_E })
}

pub fn ec_jwk(kid: &str) -> Value {
    json!({ "kty": "EC", "kid": kid, "crv": "P-256", "x": A3_X, "y": A3_Y })
}

pub fn ed_jwk(kid: &str) -> Value {
    json!({ "kty": "OKP", "kid": kid, "crv": "Ed25519", "x": ED_X })
}

pub fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

pub fn rules(algorithms: &[&str]) -> JwtRules {
    JwtRules::new(algorithms).expect("valid algorithms")
}

pub fn verifier(rules: JwtRules, keys: KeySet) -> JwtVerifier {
    JwtVerifier::new(rules, keys).expect("usable keys")
}

/// A JWK Set endpoint on 127.0.0.1 that counts requests, serves what it is told, and can go
/// down (its port then refuses connections).
pub struct JwksServer {
    pub url: String,
    state: Arc<ServerState>,
    task: JoinHandle<()>,
}

struct ServerState {
    requests: AtomicUsize,
    response: Mutex<(StatusCode, String)>,
    delay: Mutex<Duration>,
}

impl JwksServer {
    pub async fn start(body: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().expect("addr")
        );
        let state = Arc::new(ServerState {
            requests: AtomicUsize::new(0),
            response: Mutex::new((StatusCode::OK, body)),
            delay: Mutex::new(Duration::ZERO),
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            // Owned here, so that aborting the server also closes its open connections.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                while connections.try_join_next().is_some() {}
                let state = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |_request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.answer().await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, state, task }
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn serve(&self, status: StatusCode, body: String) {
        *self.state.response.lock().expect("lock") = (status, body);
    }

    /// Every answer waits this long first.
    pub fn delay(&self, delay: Duration) {
        *self.state.delay.lock().expect("lock") = delay;
    }

    /// Closes the listener and every connection.
    pub async fn down(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

impl ServerState {
    async fn answer(&self) -> Response<Full<Bytes>> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let delay = *self.delay.lock().expect("lock");
        tokio::time::sleep(delay).await;
        let (status, body) = self.response.lock().expect("lock").clone();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
    }
}
