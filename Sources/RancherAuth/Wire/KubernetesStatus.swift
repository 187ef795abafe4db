/// Kubernetes `Status` objects (`{"kind":"Status","apiVersion":"v1",…}`), the error body shape
/// kube-apiserver and kubectl understand.
public enum KubernetesStatus {
    public static func failureBody(code: Int, reason: String, message: String) -> [UInt8] {
        var body: [UInt8] = []
        JSONWriter.appendRaw(#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"#, to: &body)
        JSONWriter.appendString(message, to: &body)
        JSONWriter.appendRaw(#","reason":"#, to: &body)
        JSONWriter.appendString(reason, to: &body)
        JSONWriter.appendRaw(#","code":"#, to: &body)
        body.append(contentsOf: String(code).utf8)
        body.append(UInt8(ascii: "}"))
        return body
    }
}

/// `SelfSubjectReview` (authentication.k8s.io), what `kubectl auth whoami` asks for.
public enum SelfSubjectReviewResponse {
    /// The user as kube-apiserver would present it: the webhook's groups plus `system:authenticated`,
    /// which the apiserver adds to every authenticated user.
    public static func body(apiVersion: String, username: String, groups: [String]) -> [UInt8] {
        var body: [UInt8] = []
        JSONWriter.appendRaw(#"{"kind":"SelfSubjectReview","apiVersion":"#, to: &body)
        JSONWriter.appendString(apiVersion, to: &body)
        JSONWriter.appendRaw(#","metadata":{"creationTimestamp":null},"status":{"userInfo":{"username":"#, to: &body)
        JSONWriter.appendString(username, to: &body)
        JSONWriter.appendRaw(#","groups":"#, to: &body)
        var allGroups = groups
        if !allGroups.contains("system:authenticated") { allGroups.append("system:authenticated") }
        JSONWriter.appendStringArray(allGroups, to: &body)
        JSONWriter.appendRaw("}}}", to: &body)
        return body
    }
}
