/// Tandem's version, as `tandem --version` prints it (and, later, the server's /version).
public enum TandemVersion {
    /// Semantic version of this source tree.
    public static let current = "0.1.0"
}
