package testutil

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// testSecrets are the secret keys of the users every S3Server has, by
// access key: the proxy re-signs requests made with them.
var testSecrets = map[string]string{rootKey: rootSecret, putKey: putSecret, readKey: readSecret, writeKey: writeSecret}

// unconditional turns r, a SigV4-signed request carrying If-None-Match,
// into the same request without the header, signed again with the test
// user's own secret key.
//
// Neither versitygw nor SeaweedFS can be told to ignore If-None-Match, and
// the proxy cannot just drop the header: SigV4 signs every header but a
// few (Authorization, User-Agent, Expect, ...), If-None-Match among them,
// so the server would answer SignatureDoesNotMatch, which is not what a
// server that ignores the condition answers. Nor can the proxy fake the
// answer (turn a 412 into a 200): the object would keep its old bytes,
// and the test would show a replacement that never happened. Re-signing
// hands the real server a genuine unconditional request with the same
// method, path, query, body, payload hash and signing time: it stores the
// object as a server that ignores the header would, replacing what was
// there. That is what "a server that ignores If-None-Match" means to a
// client; the probes see the overwrite succeed, and root can see the new
// object.
//
// The payload hash is reused as the client signed it, so a body whose
// chunks are signed (STREAMING-AWS4-HMAC-SHA256-PAYLOAD, chained to the
// request's signature) cannot be re-signed: refused, loudly. drym's uploads
// send a seekable body whose hash is in the header.
func unconditional(r *http.Request) error {
	auth := r.Header.Get("Authorization")
	const alg = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, alg) {
		return fmt.Errorf("cannot re-sign %s %s without a SigV4 Authorization header (got %q)", r.Method, r.URL.Path, auth)
	}
	var scope []string
	for _, f := range strings.Split(strings.TrimPrefix(auth, alg), ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(f), "Credential="); ok {
			scope = strings.Split(v, "/") // key/date/region/service/aws4_request
		}
	}
	if len(scope) != 5 {
		return fmt.Errorf("cannot parse the credential scope of %q", auth)
	}
	secret, ok := testSecrets[scope[0]]
	if !ok {
		return fmt.Errorf("access key %q is not a test user's", scope[0])
	}
	hash := r.Header.Get("X-Amz-Content-Sha256")
	if hash == "" || strings.HasPrefix(hash, "STREAMING-AWS4-") {
		return fmt.Errorf("cannot re-sign a request whose payload hash is %q", hash)
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %w", err)
	}
	r.Header.Del("If-None-Match")
	r.Header.Del("Authorization")
	creds := aws.Credentials{AccessKeyID: scope[0], SecretAccessKey: secret}
	// S3 signs the path as sent, not escaped a second time.
	err = v4.NewSigner().SignHTTP(context.Background(), creds, r, hash, scope[3], scope[2], at,
		func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err == nil && r.Header.Get("Authorization") == "" {
		err = errors.New("the signer set no Authorization header")
	}
	return err
}
