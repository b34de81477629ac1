/** A throwaway self-signed certificate and key (openssl), for TLS in tests. */
import { execFileSync } from "node:child_process";
import path from "node:path";

export function selfSignedCert(
  dir: string,
  options: { commonName?: string; certFile?: string; keyFile?: string } = {},
): { cert: string; key: string } {
  const cert = path.join(dir, options.certFile ?? "cert.pem");
  const key = path.join(dir, options.keyFile ?? "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      `/CN=${options.commonName ?? "localhost"}`,
      "-keyout",
      key,
      "-out",
      cert,
    ],
    { stdio: "ignore" },
  );
  return { cert, key };
}
