import KubeClient

extension KubeConfig {
    /// The kubeconfig at `path`, else the in-cluster service account's; a problem is a
    /// ``ConfigurationError`` that says what cannot be read, followed by `hint`.
    package static func load(orInCluster path: String?, hint: String = "") throws(ConfigurationError) -> KubeConfig {
        do {
            if let path {
                return try KubeConfig.load(path: path)
            } else {
                return try KubeConfig.inCluster()
            }
        } catch {
            throw ConfigurationError("\(error.description)\(hint)")
        }
    }
}
