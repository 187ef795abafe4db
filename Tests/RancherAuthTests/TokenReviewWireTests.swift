import RancherAuth
import Testing

private func decode(_ body: String) throws(TokenReviewDecodingError) -> TokenReviewRequest {
    try TokenReviewDecoder.decode(Array(body.utf8))
}

private let wellFormedBodies: [(String, TokenReviewAPIVersion, String)] = [
    (#"{"kind":"TokenReview","spec":{"token":"a:b"}}"#, .v1beta1, "a:b"),
    (#"{"KIND":"TokenReview","Spec":{"TOKEN":"a:b"}}"#, .v1beta1, "a:b"),
    (#"{"kind":"X","kind":"TokenReview","spec":{"token":"x:1"},"spec":{"token":"a:b"}}"#, .v1beta1, "a:b"),
    (#"{"kind":"TokenReview","spec":{"token":"a:b"},"extra":[1,2,{"x":null}],"n":-1.5e+3}"#, .v1beta1, "a:b"),
    (#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"a:b"}}"#, .v1, "a:b"),
    (#"{"APIVERSION":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"a:b"}}"#, .v1, "a:b"),
    (#"{"apiVersion":null,"kind":"TokenReview","spec":{"token":"a:b"}}"#, .v1beta1, "a:b"),
    (#"{"k\u0069nd":"Token\u0052eview","spec":{"token":"a:\u00e9\ud83d\ude00\n"}}"#, .v1beta1, "a:é😀\n"),
    (#"{"kind":"TokenReview","spec":{"token":"a:\ud800"}}"#, .v1beta1, "a:\u{FFFD}"),
    (" \r\n\t{ \"kind\" : \"TokenReview\" , \"spec\" : { \"token\" : \"a:b\" } } \n", .v1beta1, "a:b"),
    (#"{"kind":"TokenReview","spec":{"token":"a:b\/c"}}"#, .v1beta1, "a:b/c"),
]

private let malformedBodies: [(String, TokenReviewDecodingError.Code)] = [
    ("", .invalidJSON),
    ("not json", .invalidJSON),
    ("null", .wrongKind),
    ("{}", .wrongKind),
    ("[]", .notAnObject),
    (#""TokenReview""#, .notAnObject),
    (#"{"kind":"tokenreview","spec":{"token":"a:b"}}"#, .wrongKind),
    (#"{"kind":"TokenReview"}"#, .missingToken),
    (#"{"kind":"TokenReview","spec":null}"#, .missingToken),
    (#"{"kind":"TokenReview","spec":{"token":""}}"#, .missingToken),
    (#"{"kind":"TokenReview","spec":{"token":null}}"#, .missingToken),
    (#"{"kind":"TokenReview","spec":{"token":123}}"#, .wrongType),
    (#"{"kind":"TokenReview","spec":"x"}"#, .wrongType),
    (#"{"kind":5,"spec":{"token":"a:b"}}"#, .wrongType),
    (#"{"kind":"TokenReview","spec":{"token":"a:b"}} x"#, .invalidJSON),
    (#"{"kind":"TokenReview","spec":{"token":"a:b"}"#, .invalidJSON),
    (#"{"kind":"TokenReview","spec":{"token":"a:b",}}"#, .invalidJSON),
    (#"{"kind":"TokenReview","spec":{"token":"a\x:b"}}"#, .invalidJSON),
    ("{\"kind\":\"TokenReview\",\"spec\":{\"token\":\"a\u{01}:b\"}}", .invalidJSON),
    (#"{"kind":"TokenReview","n":01,"spec":{"token":"a:b"}}"#, .invalidJSON),
    (#"{"kind":"TokenReview","n":tru,"spec":{"token":"a:b"}}"#, .invalidJSON),
    (#"{"apiVersion":"authentication.k8s.io/v2","kind":"TokenReview","spec":{"token":"a:b"}}"#, .unsupportedAPIVersion),
    (String(repeating: "[", count: 100) + String(repeating: "]", count: 100), .notAnObject),
    (#"{"kind":"TokenReview","x":"# + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}", .tooDeep),
]

@Suite("TokenReview request decoding")
struct TokenReviewDecoderTests {
    @Test("What kube-apiserver sends (v1 and default v1beta1 mode)")
    func apiserverShape() throws {
        let v1 =
            #"{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","metadata":{},"spec":{"token":"abc:def","audiences":["https://kubernetes.default.svc"]},"status":{"user":{}}}"#
            + "\n"
        #expect(try decode(v1) == TokenReviewRequest(apiVersion: .v1, token: "abc:def"))
        let beta = v1.replacing("/v1\"", with: "/v1beta1\"")
        #expect(try decode(beta) == TokenReviewRequest(apiVersion: .v1beta1, token: "abc:def"))
    }

    @Test("Go encoding/json semantics", arguments: wellFormedBodies)
    func goSemantics(body: String, apiVersion: TokenReviewAPIVersion, token: String) throws {
        #expect(try decode(body) == TokenReviewRequest(apiVersion: apiVersion, token: token))
    }

    @Test("Malformed reviews are refused with a reason", arguments: malformedBodies)
    func malformed(body: String, code: TokenReviewDecodingError.Code) {
        do {
            let request = try decode(body)
            Issue.record("decoded \(request) from a malformed body")
        } catch {
            if body.hasPrefix("[[[") {
                #expect(error.code == .tooDeep || error.code == .notAnObject)
            } else {
                #expect(error.code == code)
            }
        }
    }

    @Test("Error messages never echo the token")
    func messagesDoNotLeak() {
        let secretish = "kubeconfig-u-abc:verysecretvalue"
        for body in [#"{"kind":"X","spec":{"token":"\#(secretish)"}}"#, #"{"kind":"TokenReview","spec":{"token":"\#(secretish)"} junk"#] {
            do {
                _ = try decode(body)
            } catch {
                #expect(!error.message.contains("verysecret"))
            }
        }
    }
}

@Suite("TokenReview responses")
struct TokenReviewResponseTests {
    @Test("Success body is byte-exact with the Go service except for the echoed apiVersion")
    func successBody() {
        let body = TokenReviewResponse.authenticatedBody(
            apiVersion: .v1beta1, username: "u-abc12", groups: ["github_team://1", "local://g-xyz"])
        #expect(
            String(decoding: body, as: UTF8.self)
                == #"{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","status":{"authenticated":true,"user":{"username":"u-abc12","groups":["github_team://1","local://g-xyz"]}}}"#
        )
        let v1 = TokenReviewResponse.authenticatedBody(apiVersion: .v1, username: "u", groups: [])
        #expect(
            String(decoding: v1, as: UTF8.self)
                == #"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":true,"user":{"username":"u"}}}"#)
    }

    @Test("Go escaping: <, >, &, U+2028, control characters, quotes; slashes kept")
    func escaping() {
        var out: [UInt8] = []
        JSONWriter.appendString("cn=a&b<c>\"d\\e\u{2028}\u{2029}\u{01}\n/é", to: &out)
        #expect(String(decoding: out, as: UTF8.self) == #""cn=a\u0026b\u003cc\u003e\"d\\e\u2028\u2029\u0001\n/é""#)
    }

    @Test("Refusal bodies carry status.error, except for tokens that can never become valid")
    func refusalBodies() {
        let refused = TokenReviewResponse.refusedBody(apiVersion: .v1, error: RefusalReason.tokenDisabled.statusError)
        #expect(
            String(decoding: refused, as: UTF8.self)
                == #"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":false,"error":"token is disabled"}}"#)
        let bare = TokenReviewResponse.refusedBody(apiVersion: .v1beta1, error: RefusalReason.notRancherToken.statusError)
        #expect(
            String(decoding: bare, as: UTF8.self)
                == #"{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","status":{"authenticated":false}}"#)
        // Bare (cacheable by kube-apiserver): not Rancher-shaped, too long, or a JWT signed by no listed key.
        let bareReasons: Set<RefusalReason> = [.notRancherToken, .tokenTooLong, .emergencyUnknownKey]
        for reason in RefusalReason.allCases {
            #expect((reason.statusError == nil) == bareReasons.contains(reason), "\(reason)")
        }
    }

    @Test("Kubernetes Status and SelfSubjectReview bodies")
    func statusBodies() {
        #expect(
            String(decoding: KubernetesStatus.failureBody(code: 401, reason: "Unauthorized", message: "Unauthorized"), as: UTF8.self)
                == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
        )
        let review = SelfSubjectReviewResponse.body(apiVersion: "authentication.k8s.io/v1", username: "u-1", groups: ["g"])
        #expect(
            String(decoding: review, as: UTF8.self)
                == #"{"kind":"SelfSubjectReview","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"status":{"userInfo":{"username":"u-1","groups":["g","system:authenticated"]}}}"#
        )
    }
}
