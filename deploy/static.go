package deploy

// static are the manifests written as they are: the exporter (a
// StatefulSet: its state directory must survive restarts), the optimizer
// (a Deployment reading Prometheus), their Services and ServiceMonitors.
// Images are usage-exporter:dev (docker build -t usage-exporter:dev .):
// `kustomize edit set image usage-exporter=registry/usage-exporter:tag`.
var static = map[string]string{
	"exporter.yaml": `
# The configuration is a Secret: it holds the key of the user id hashes.
apiVersion: v1
kind: Secret
metadata:
  name: usage-exporter
  labels: {app.kubernetes.io/name: usage-exporter, app.kubernetes.io/component: exporter}
stringData:
  usage-exporter.yml: |
    # The gateway's logs, mounted at /var/log/gateway (see the volume below): adapt the paths.
    logs:
      sources:
        - {path: /var/log/gateway/*.json.log, format: json}
        - {path: /var/log/gateway/access.log, format: nginx}
    plans:
      default_tier: trial
    users:
      label: hashed            # user ids are personal data: keyed hashes in Prometheus and on disk
      hash_key: change-me      # set your own: the same key gives the same hashes across restarts
---
apiVersion: v1
kind: Service
metadata:
  name: usage-exporter
  labels: {app.kubernetes.io/name: usage-exporter, app.kubernetes.io/component: exporter}
spec:
  selector: {app.kubernetes.io/name: usage-exporter, app.kubernetes.io/component: exporter}
  ports:
    - {name: http, port: 9816, targetPort: http}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: usage-exporter
  labels: {app.kubernetes.io/name: usage-exporter, app.kubernetes.io/component: exporter}
spec:
  serviceName: usage-exporter
  replicas: 1
  selector:
    matchLabels: {app.kubernetes.io/name: usage-exporter, app.kubernetes.io/component: exporter}
  template:
    metadata:
      labels: {app.kubernetes.io/name: usage-exporter, app.kubernetes.io/component: exporter}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532}
      containers:
        - name: usage-exporter
          image: usage-exporter:dev
          args:
            - --config.file=/etc/usage-exporter/usage-exporter.yml
            - --state.dir=/var/lib/usage-exporter
            - --redis.url=$(REDIS_URL)
            - --litellm.url=$(LITELLM_URL)
          env:
            - {name: REDIS_URL, value: "redis://redis:6379/0"}
            - {name: LITELLM_URL, value: "http://litellm:4000"}
          ports:
            - {name: http, containerPort: 9816}
          readinessProbe:
            httpGet: {path: /-/ready, port: http}
          livenessProbe:
            httpGet: {path: /-/healthy, port: http}
          resources:
            requests: {cpu: 100m, memory: 128Mi}
            limits: {memory: 512Mi}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
          volumeMounts:
            - {name: config, mountPath: /etc/usage-exporter, readOnly: true}
            - {name: state, mountPath: /var/lib/usage-exporter}
            - {name: logs, mountPath: /var/log/gateway, readOnly: true}
      volumes:
        - name: config
          secret: {secretName: usage-exporter}
        - name: logs
          hostPath: {path: /var/log/gateway, type: Directory}
  volumeClaimTemplates:
    - metadata: {name: state}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 1Gi}}
`,
	"optimizer.yaml": `
apiVersion: v1
kind: Service
metadata:
  name: usage-optimizer
  labels: {app.kubernetes.io/name: usage-exporter, app.kubernetes.io/component: optimizer}
spec:
  selector: {app.kubernetes.io/name: usage-exporter, app.kubernetes.io/component: optimizer}
  ports:
    - {name: http, port: 9817, targetPort: http}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: usage-optimizer
  labels: {app.kubernetes.io/name: usage-exporter, app.kubernetes.io/component: optimizer}
spec:
  replicas: 1
  selector:
    matchLabels: {app.kubernetes.io/name: usage-exporter, app.kubernetes.io/component: optimizer}
  template:
    metadata:
      labels: {app.kubernetes.io/name: usage-exporter, app.kubernetes.io/component: optimizer}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532}
      containers:
        - name: usage-optimizer
          image: usage-exporter:dev
          command: [/usr/local/bin/usage-optimizer]
          args:
            # kube-prometheus-stack's Prometheus; or Mimir's / Thanos' Prometheus API.
            - --prometheus.url=http://prometheus-operated.monitoring.svc:9090
            - --analysis.days=30
          ports:
            - {name: http, containerPort: 9817}
          readinessProbe:
            httpGet: {path: /-/ready, port: http}
          livenessProbe:
            httpGet: {path: /-/healthy, port: http}
          resources:
            requests: {cpu: 50m, memory: 64Mi}
            limits: {memory: 512Mi}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`,
	"servicemonitors.yaml": `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: usage-exporter
  labels: {app.kubernetes.io/name: usage-exporter, app.kubernetes.io/component: exporter, release: kube-prometheus-stack}
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: usage-exporter, app.kubernetes.io/component: exporter}
  endpoints:
    - {port: http, interval: 30s, scrapeTimeout: 25s}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: usage-optimizer
  labels: {app.kubernetes.io/name: usage-exporter, app.kubernetes.io/component: optimizer, release: kube-prometheus-stack}
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: usage-exporter, app.kubernetes.io/component: optimizer}
  endpoints:
    - {port: http, interval: 60s}
`,
}
