#ifndef KUBE_API_AUTH_COPENSSL_SHIM_H
#define KUBE_API_AUTH_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/err.h>
#endif
