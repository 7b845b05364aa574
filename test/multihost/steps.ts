/**
 * The commands of docs/multi-host.md, as the multi-host test runs them: each is run on a host
 * with `sh -c` and the variables the doc defines (HOST_IP, HOST_NAME, ETCD_CLUSTER, ...).
 * test/docs/multi-host-doc.test.ts checks that every one of them is in the doc, word for word,
 * so the doc and the test cannot drift apart.
 */

/** Step 1, every host: one etcd member. */
export const ETCD = `etcd --name $HOST_NAME --data-dir $ETCD_DATA \\
  --listen-peer-urls http://$HOST_IP:2380 --initial-advertise-peer-urls http://$HOST_IP:2380 \\
  --listen-client-urls http://$HOST_IP:2379,http://127.0.0.1:2379 --advertise-client-urls http://$HOST_IP:2379 \\
  --initial-cluster $ETCD_CLUSTER --initial-cluster-state new --initial-cluster-token hexmesh`;

/** Step 1 check: the member is healthy (it is once a quorum has formed). */
export const ETCD_HEALTH = `curl -sf http://$HOST_IP:2379/health`;

/** Step 2, once (host a): the secret that seals the CA's intermediate key in the store; copied to every host. */
export const CA_SECRET = `(umask 077; openssl rand -base64 32 > $CA_SECRET)`;

/** Step 2, every host: a control-plane replica over the etcd cluster, HTTPS from the mesh CA. */
export const CONTROL = `hexmesh control --listen 0.0.0.0:7070 --store $HEXMESH_STORE --tls --advertise $HOST_IP --ca-key-secret-file $CA_SECRET --data-dir $HEXMESH_DATA`;

/** Step 2 check: the replica serves and reaches the store. */
export const CONTROL_HEALTH = `curl -sf --cacert $HEXMESH_DATA/ca-bundle.pem https://$HOST_IP:7070/v1/health`;

/** Step 3, host a (the operator): a join token per service, printed once. */
export const TOKEN = `hexmesh identity token create --namespace default --service-account $SERVICE --ttl 1h`;

/** Step 4: the traffic policy for host failures (file echo-policy.yaml, below). */
export const APPLY_POLICY = `hexmesh apply -f echo-policy.yaml`;

/** The policy file of step 4. */
export const POLICY_YAML = `apiVersion: hexmesh.io/v1alpha1
kind: TrafficPolicy
metadata: { name: echo }
spec:
  targetRef: { kind: Service, name: echo }
  timeouts: { perTry: 1s }
  retries: { attempts: 3 }
`;

/** Step 5, hosts b and c: the app (a stand-in that answers with its host's name). */
export const ECHO_APP = `node -e 'require("http").createServer((q, s) => s.end("echo from " + process.env.HOST_NAME + "\\n")).listen(8080, "127.0.0.1")'`;

/** Step 5, hosts b and c: its sidecar, registered with the address the other hosts reach. */
export const ECHO_SIDECAR = `HEXMESH_JOIN_TOKEN=$ECHO_TOKEN hexmesh proxy --control $CONTROL_URLS --service echo --app-port 8080 --check http:/ --advertise $HOST_IP`;

/** Step 5, host a: the client's sidecar (no app port: it only calls out). */
export const CLIENT_SIDECAR = `HEXMESH_JOIN_TOKEN=$CLIENT_TOKEN hexmesh proxy --control $CONTROL_URLS --service client --advertise $HOST_IP`;

/** Step 6, host a: the catalog. */
export const ENDPOINTS = `hexmesh endpoints echo -o json`;

/** Step 6, host a: a request through the client's sidecar. */
export const REQUEST = `curl -s -H 'host: echo' http://127.0.0.1:4140/`;

/** Step 6, hosts b and c: requests that arrived over mutual TLS, by calling service. */
export const MTLS_METRICS = `curl -s http://127.0.0.1:4191/metrics | grep '^hexmesh_requests_total{direction="inbound"'`;

/** Every command, for the doc check. */
export const ALL_STEPS = [
  ETCD,
  ETCD_HEALTH,
  CA_SECRET,
  CONTROL,
  CONTROL_HEALTH,
  TOKEN,
  APPLY_POLICY,
  POLICY_YAML,
  ECHO_APP,
  ECHO_SIDECAR,
  CLIENT_SIDECAR,
  ENDPOINTS,
  REQUEST,
  MTLS_METRICS,
];

/** Whitespace and line continuations do not matter when comparing a command with the doc. */
export function normaliseCommand(s: string): string {
  return s.replace(/\\\n/g, ' ').replace(/\s+/g, ' ').trim();
}
