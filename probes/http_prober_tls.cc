// TLS facts, captured in OpenSSL's verify callback so they exist even when
// verification fails (curl's CERTINFO is empty then). curl builds one SSL_CTX per
// connection, so the per-CTX ex_data slot points at the probe's TlsFacts.

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <string>

#include "probes/http_prober_impl.h"

namespace gatewatch::probes {
namespace {

int TlsExIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::string NameText(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return {};
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(std::max(0L, len)));
  BIO_free(bio);
  return out;
}

int VerifyCallback(int preverify_ok, X509_STORE_CTX* store) {
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl == nullptr) return preverify_ok;
  auto* facts = static_cast<TlsFacts*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), TlsExIndex()));
  X509* cert = X509_STORE_CTX_get_current_cert(store);
  if (facts == nullptr || cert == nullptr) return preverify_ok;
  facts->version = SSL_get_version(ssl);
  if (X509_STORE_CTX_get_error_depth(store) == 0) {
    facts->subject = NameText(X509_get_subject_name(cert));
    facts->issuer = NameText(X509_get_issuer_name(cert));
  }
  std::tm tm{};
  if (const ASN1_TIME* not_after = X509_get0_notAfter(cert);
      not_after != nullptr && ASN1_TIME_to_tm(not_after, &tm) == 1) {
    const SystemTime expiry = std::chrono::system_clock::from_time_t(timegm(&tm));
    if (!facts->earliest_expiry || expiry < *facts->earliest_expiry) {
      facts->earliest_expiry = expiry;
      facts->earliest_expiry_subject = NameText(X509_get_subject_name(cert));
    }
  }
  return preverify_ok;  // observe only: curl's verification decision stands
}

}  // namespace

CURLcode SslCtxCallback(CURL*, void* ssl_ctx, void* user) {
  auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  SSL_CTX_set_ex_data(ctx, TlsExIndex(), user);
  SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), VerifyCallback);
  return CURLE_OK;
}

}  // namespace gatewatch::probes
