//! A small Kubernetes CRI client: the calls kubelet makes to containerd's CRI plugin
//! (`runtime.v1`), over containerd's unix socket, behind a blocking API.
//!
//! The end-to-end tests use it in place of kubelet (which is not available where they
//! run), and `youki-cri smoke` uses it to check a node's runtime handler. Each
//! [`Client`] owns a current-thread tokio runtime and the two gRPC clients (runtime and
//! image service); every call blocks until containerd answers or the client's timeout
//! passes, so callers need no async code.
//!
//! ```no_run
//! use youki_cri::{api, Client};
//! let cri = Client::connect("/run/containerd/containerd.sock").expect("connect");
//! println!("{}", cri.version().expect("Version").runtime_version);
//! let mut pod = youki_cri::pod_sandbox_config("demo", "default", "uid-1");
//! youki_cri::set_host_network(&mut pod, true);
//! let pod_id = cri.run_pod_sandbox(&pod, "youki").expect("RunPodSandbox");
//! cri.stop_pod_sandbox(&pod_id).expect("StopPodSandbox");
//! cri.remove_pod_sandbox(&pod_id).expect("RemovePodSandbox");
//! # let _ = api::NamespaceMode::Pod;
//! ```

// No unsafe code here: the kernel calls that need it live in runtime-core (issue 20).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The CRI `runtime.v1` messages (re-exported from the `k8s-cri` crate).
pub use k8s_cri::v1 as api;
/// gRPC status codes, to match on [`Error::code`].
pub use tonic::Code;

use api::*;

/// Where containerd serves CRI on a node by default.
pub const DEFAULT_ADDRESS: &str = "/run/containerd/containerd.sock";

/// How long a call may take unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The CRI API version kubelet announces in Version.
const KUBELET_API_VERSION: &str = "v1";

/// Largest answer accepted (ListImages / ListContainers on a busy node).
const MAX_MESSAGE: usize = 64 << 20;

/// What went wrong in a CRI call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client's tokio runtime could not be built.
    #[error("cannot start the CRI client's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// containerd's socket could not be reached.
    #[error("cannot connect to the CRI socket {}: {reason}", address.display())]
    Connect {
        /// The socket path.
        address: PathBuf,
        /// The connection error and its causes.
        reason: String,
    },
    /// containerd answered the call with an error.
    #[error("{call}: {} ({:?})", status.message(), status.code())]
    Call {
        /// The CRI method, e.g. "RunPodSandbox".
        call: &'static str,
        /// containerd's answer.
        status: tonic::Status,
    },
    /// containerd did not answer in time.
    #[error("{call}: no answer within {timeout:?}")]
    Timeout {
        /// The CRI method.
        call: &'static str,
        /// How long the client waited.
        timeout: Duration,
    },
    /// containerd answered without a field the CRI API promises.
    #[error("{call}: the answer has no {field}")]
    Missing {
        /// The CRI method.
        call: &'static str,
        /// The missing field.
        field: &'static str,
    },
}

impl Error {
    /// The gRPC code of a call containerd refused (None for other errors).
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Call { status, .. } => Some(status.code()),
            _ => None,
        }
    }

    /// containerd's error message for a refused call ("" for other errors).
    pub fn message(&self) -> &str {
        match self {
            Error::Call { status, .. } => status.message(),
            _ => "",
        }
    }
}

/// Result of a CRI call.
pub type Result<T> = std::result::Result<T, Error>;

/// A connection to a CRI server (containerd's CRI plugin) with a blocking API.
pub struct Client {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    timeout: Duration,
    address: PathBuf,
}

impl Client {
    /// Connects to the CRI server at the unix socket `address`, with [`DEFAULT_TIMEOUT`].
    pub fn connect(address: impl AsRef<Path>) -> Result<Client> {
        Client::connect_with_timeout(address, DEFAULT_TIMEOUT)
    }

    /// Connects to the unix socket `address`; each call then waits at most `timeout`.
    pub fn connect_with_timeout(address: impl AsRef<Path>, timeout: Duration) -> Result<Client> {
        let address = address.as_ref().to_path_buf();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(Error::Runtime)?;
        let connect_error = |reason: String| Error::Connect {
            address: address.clone(),
            reason,
        };
        // The URI is a placeholder: the connector below ignores it and dials the socket.
        let endpoint = Endpoint::try_from("http://localhost")
            .map_err(|e| connect_error(error_chain(&e)))?
            .connect_timeout(timeout);
        let path = address.clone();
        let channel = rt
            .block_on(async {
                tokio::time::timeout(
                    timeout,
                    endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move { UnixStream::connect(path).await.map(TokioIo::new) }
                    })),
                )
                .await
            })
            .map_err(|_| connect_error(format!("no connection within {timeout:?}")))?
            .map_err(|e| connect_error(error_chain(&e)))?;
        Ok(Client {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE),
            images: ImageServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE),
            timeout,
            address,
        })
    }

    /// The socket this client talks to.
    pub fn address(&self) -> &Path {
        &self.address
    }

    /// Runs one call with the client's timeout (sent to the server as the gRPC
    /// deadline, and enforced here too).
    fn call<T, R, F, Fut>(
        &self,
        name: &'static str,
        message: T,
        timeout: Duration,
        f: F,
    ) -> Result<R>
    where
        F: FnOnce(tonic::Request<T>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<R>, tonic::Status>>,
    {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        let answer = self
            .rt
            .block_on(async { tokio::time::timeout(timeout, f(request)).await });
        match answer {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(Error::Call { call: name, status }),
            Err(_) => Err(Error::Timeout {
                call: name,
                timeout,
            }),
        }
    }

    fn rs(&self) -> RuntimeServiceClient<Channel> {
        // Cheap: clients share the channel; a clone per call keeps the API `&self`.
        self.runtime.clone()
    }

    fn is(&self) -> ImageServiceClient<Channel> {
        self.images.clone()
    }

    /// Version: the runtime's name, version and CRI API version.
    pub fn version(&self) -> Result<VersionResponse> {
        let req = VersionRequest {
            version: KUBELET_API_VERSION.into(),
        };
        self.call("Version", req, self.timeout, |r| async move {
            self.rs().version(r).await
        })
    }

    /// Status: the runtime's RuntimeReady and NetworkReady conditions (and, verbose,
    /// its configuration as JSON in `info["config"]`).
    pub fn status(&self, verbose: bool) -> Result<StatusResponse> {
        self.call(
            "Status",
            StatusRequest { verbose },
            self.timeout,
            |r| async move { self.rs().status(r).await },
        )
    }

    /// RunPodSandbox with `runtime_handler` (a runtime name of containerd's CRI
    /// config); returns the sandbox id.
    pub fn run_pod_sandbox(
        &self,
        config: &PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String> {
        let req = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: runtime_handler.into(),
        };
        let r = self.call("RunPodSandbox", req, self.timeout, |r| async move {
            self.rs().run_pod_sandbox(r).await
        })?;
        Ok(r.pod_sandbox_id)
    }

    /// PodSandboxStatus; `verbose` adds containerd's `info` map (pid, netns, spec).
    pub fn pod_sandbox_status(&self, id: &str, verbose: bool) -> Result<PodSandboxStatusResponse> {
        let req = PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose,
        };
        self.call("PodSandboxStatus", req, self.timeout, |r| async move {
            self.rs().pod_sandbox_status(r).await
        })
    }

    /// StopPodSandbox: stops every container of the pod and tears down its network.
    pub fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let req = StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.call("StopPodSandbox", req, self.timeout, |r| async move {
            self.rs().stop_pod_sandbox(r).await
        })
        .map(drop)
    }

    /// RemovePodSandbox: removes the pod and its containers.
    pub fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let req = RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.call("RemovePodSandbox", req, self.timeout, |r| async move {
            self.rs().remove_pod_sandbox(r).await
        })
        .map(drop)
    }

    /// ListPodSandbox, optionally filtered.
    pub fn list_pod_sandbox(&self, filter: Option<PodSandboxFilter>) -> Result<Vec<PodSandbox>> {
        let r = self.call(
            "ListPodSandbox",
            ListPodSandboxRequest { filter },
            self.timeout,
            |r| async move { self.rs().list_pod_sandbox(r).await },
        )?;
        Ok(r.items)
    }

    /// CreateContainer in the pod `pod_id` (created with `pod_config`); returns the
    /// container id.
    pub fn create_container(
        &self,
        pod_id: &str,
        config: &ContainerConfig,
        pod_config: &PodSandboxConfig,
    ) -> Result<String> {
        let req = CreateContainerRequest {
            pod_sandbox_id: pod_id.into(),
            config: Some(config.clone()),
            sandbox_config: Some(pod_config.clone()),
        };
        let r = self.call("CreateContainer", req, self.timeout, |r| async move {
            self.rs().create_container(r).await
        })?;
        Ok(r.container_id)
    }

    /// StartContainer.
    pub fn start_container(&self, id: &str) -> Result<()> {
        let req = StartContainerRequest {
            container_id: id.into(),
        };
        self.call("StartContainer", req, self.timeout, |r| async move {
            self.rs().start_container(r).await
        })
        .map(drop)
    }

    /// CheckpointContainer: kubelet's forensic checkpoint of a running container into the
    /// archive `location`; the container keeps running. `timeout` bounds the call.
    pub fn checkpoint_container(&self, id: &str, location: &Path, timeout: Duration) -> Result<()> {
        let req = CheckpointContainerRequest {
            container_id: id.into(),
            location: location.to_string_lossy().into_owned(),
            timeout: timeout.as_secs().try_into().unwrap_or(i64::MAX),
        };
        self.call("CheckpointContainer", req, timeout, |r| async move {
            self.rs().checkpoint_container(r).await
        })
        .map(drop)
    }

    /// StopContainer: SIGTERM (or the image's stop signal), SIGKILL after
    /// `grace_secs` seconds.
    pub fn stop_container(&self, id: &str, grace_secs: i64) -> Result<()> {
        let req = StopContainerRequest {
            container_id: id.into(),
            timeout: grace_secs,
        };
        let wait = self.timeout + Duration::from_secs(grace_secs.max(0).unsigned_abs());
        self.call("StopContainer", req, wait, |r| async move {
            self.rs().stop_container(r).await
        })
        .map(drop)
    }

    /// RemoveContainer (a running container is killed first).
    pub fn remove_container(&self, id: &str) -> Result<()> {
        let req = RemoveContainerRequest {
            container_id: id.into(),
        };
        self.call("RemoveContainer", req, self.timeout, |r| async move {
            self.rs().remove_container(r).await
        })
        .map(drop)
    }

    /// ContainerStatus; `verbose` adds containerd's `info` map (pid, runtime spec).
    pub fn container_status(&self, id: &str, verbose: bool) -> Result<ContainerStatusResponse> {
        let req = ContainerStatusRequest {
            container_id: id.into(),
            verbose,
        };
        self.call("ContainerStatus", req, self.timeout, |r| async move {
            self.rs().container_status(r).await
        })
    }

    /// The container's status without containerd's extra info.
    pub fn container_state(&self, id: &str) -> Result<ContainerStatus> {
        self.container_status(id, false)?
            .status
            .ok_or(Error::Missing {
                call: "ContainerStatus",
                field: "status",
            })
    }

    /// ListContainers, optionally filtered.
    pub fn list_containers(&self, filter: Option<ContainerFilter>) -> Result<Vec<Container>> {
        let r = self.call(
            "ListContainers",
            ListContainersRequest { filter },
            self.timeout,
            |r| async move { self.rs().list_containers(r).await },
        )?;
        Ok(r.containers)
    }

    /// ExecSync: runs `cmd` in the container, waits at most `timeout` (whole seconds,
    /// at least one), returns its stdout, stderr and exit code.
    pub fn exec_sync(&self, id: &str, cmd: &[&str], timeout: Duration) -> Result<ExecSyncResponse> {
        let secs = timeout.as_secs().max(1);
        let req = ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: i64::try_from(secs).unwrap_or(i64::MAX),
        };
        // containerd enforces the exec's own timeout; give it time to report.
        let wait = Duration::from_secs(secs) + self.timeout;
        self.call("ExecSync", req, wait, |r| async move {
            self.rs().exec_sync(r).await
        })
    }

    /// ContainerStats: cpu, memory and writable-layer usage of one container.
    pub fn container_stats(&self, id: &str) -> Result<ContainerStats> {
        let req = ContainerStatsRequest {
            container_id: id.into(),
        };
        self.call("ContainerStats", req, self.timeout, |r| async move {
            self.rs().container_stats(r).await
        })?
        .stats
        .ok_or(Error::Missing {
            call: "ContainerStats",
            field: "stats",
        })
    }

    /// ListContainerStats, optionally filtered.
    pub fn list_container_stats(
        &self,
        filter: Option<ContainerStatsFilter>,
    ) -> Result<Vec<ContainerStats>> {
        let r = self.call(
            "ListContainerStats",
            ListContainerStatsRequest { filter },
            self.timeout,
            |r| async move { self.rs().list_container_stats(r).await },
        )?;
        Ok(r.stats)
    }

    /// UpdateContainerResources: new Linux limits for a container.
    pub fn update_container_resources(
        &self,
        id: &str,
        linux: LinuxContainerResources,
    ) -> Result<()> {
        let req = UpdateContainerResourcesRequest {
            container_id: id.into(),
            linux: Some(linux),
            ..Default::default()
        };
        self.call(
            "UpdateContainerResources",
            req,
            self.timeout,
            |r| async move { self.rs().update_container_resources(r).await },
        )
        .map(drop)
    }

    /// ListImages, optionally filtered.
    pub fn list_images(&self, filter: Option<ImageFilter>) -> Result<Vec<Image>> {
        let r = self.call(
            "ListImages",
            ListImagesRequest { filter },
            self.timeout,
            |r| async move { self.is().list_images(r).await },
        )?;
        Ok(r.images)
    }

    /// ImageStatus of `image` (a reference or id); `None` when the runtime does not
    /// have it.
    pub fn image_status(&self, image: &str) -> Result<Option<Image>> {
        let req = ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        };
        let r = self.call("ImageStatus", req, self.timeout, |r| async move {
            self.is().image_status(r).await
        })?;
        Ok(r.image)
    }
}

/// Every error in `e`'s source chain, joined: tonic's transport errors say little at
/// the top level ("transport error") and the cause ("No such file or directory")
/// below it.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        cur = s.source();
    }
    text
}

/// An image reference as CRI takes it.
pub fn image_spec(image: &str) -> ImageSpec {
    ImageSpec {
        image: image.into(),
        ..Default::default()
    }
}

/// Namespace options as kubelet sends them for an ordinary pod: network and IPC
/// shared by the pod, a PID namespace per container.
pub fn default_namespace_options() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A pod sandbox config like kubelet's for a pod with no special settings: metadata,
/// hostname, kubelet's labels, pod network, no cgroup parent, no log directory.
pub fn pod_sandbox_config(name: &str, namespace: &str, uid: &str) -> PodSandboxConfig {
    let labels = HashMap::from([
        ("io.kubernetes.pod.name".to_string(), name.to_string()),
        (
            "io.kubernetes.pod.namespace".to_string(),
            namespace.to_string(),
        ),
        ("io.kubernetes.pod.uid".to_string(), uid.to_string()),
    ]);
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: namespace.into(),
            attempt: 0,
        }),
        hostname: name.into(),
        labels,
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(default_namespace_options()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Puts the pod in the node's network namespace (or back in its own).
pub fn set_host_network(pod: &mut PodSandboxConfig, host: bool) {
    let ns = pod_namespace_options(pod);
    ns.network = if host {
        NamespaceMode::Node
    } else {
        NamespaceMode::Pod
    } as i32;
    if host {
        // kubelet sends no hostname for host-network pods: they have the node's.
        pod.hostname.clear();
    }
}

/// Shares one PID namespace among the pod's containers (shareProcessNamespace).
pub fn set_share_process_namespace(pod: &mut PodSandboxConfig, share: bool) {
    pod_namespace_options(pod).pid = if share {
        NamespaceMode::Pod
    } else {
        NamespaceMode::Container
    } as i32;
}

/// Runs the pod in a user namespace of its own, as kubelet asks for a pod with
/// `hostUsers: false`: mode POD, ids 0..`size` in the pod are `host_id`.. on the host,
/// for users and groups alike. Containers created with [`container_config`] get the
/// same options (kubelet sends them with every container of the pod).
pub fn set_user_namespace(pod: &mut PodSandboxConfig, host_id: u32, size: u32) {
    let map = vec![IdMapping {
        host_id,
        container_id: 0,
        length: size,
    }];
    pod_namespace_options(pod).userns_options = Some(UserNamespace {
        mode: NamespaceMode::Pod as i32,
        uids: map.clone(),
        gids: map,
    });
}

/// The user namespace mappings of a pod made with [`set_user_namespace`] (None: the
/// node's user namespace): what kubelet also puts on each volume of such a pod, for
/// an id-mapped mount.
pub fn user_namespace_mappings(pod: &PodSandboxConfig) -> Option<(Vec<IdMapping>, Vec<IdMapping>)> {
    let userns = pod
        .linux
        .as_ref()?
        .security_context
        .as_ref()?
        .namespace_options
        .as_ref()?
        .userns_options
        .as_ref()?;
    (userns.mode == NamespaceMode::Pod as i32).then(|| (userns.uids.clone(), userns.gids.clone()))
}

/// The pod's namespace options, created if absent.
pub fn pod_namespace_options(pod: &mut PodSandboxConfig) -> &mut NamespaceOption {
    pod.linux
        .get_or_insert_with(Default::default)
        .security_context
        .get_or_insert_with(Default::default)
        .namespace_options
        .get_or_insert_with(default_namespace_options)
}

/// A container config like kubelet's: metadata, image, command (the image's
/// entrypoint is replaced when `command` is not empty), the pod's namespace options,
/// a log path of `<name>.log` (inside the pod's log directory, if it has one).
pub fn container_config(
    name: &str,
    image: &str,
    command: &[&str],
    pod: &PodSandboxConfig,
) -> ContainerConfig {
    let namespace_options = pod
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_else(default_namespace_options);
    let labels = HashMap::from([("io.kubernetes.container.name".to_string(), name.to_string())]);
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(image_spec(image)),
        command: command.iter().map(|s| s.to_string()).collect(),
        labels,
        log_path: if pod.log_directory.is_empty() {
            String::new()
        } else {
            format!("{name}.log")
        },
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(namespace_options),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A condition of Status (e.g. "RuntimeReady"), if the runtime reported it.
pub fn condition<'a>(status: &'a StatusResponse, kind: &str) -> Option<&'a RuntimeCondition> {
    status
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.r#type == kind)
}

/// A field of containerd's verbose `info["info"]` JSON (e.g. "pid", or
/// "runtimeSpec"), from PodSandboxStatus or ContainerStatus.
pub fn verbose_info(info: &HashMap<String, String>, field: &str) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(info.get("info")?).ok()?;
    v.get(field).cloned()
}

/// The sandbox's pid on the host, from a verbose PodSandboxStatus.
pub fn sandbox_pid(status: &PodSandboxStatusResponse) -> Option<i32> {
    verbose_info(&status.info, "pid")?
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
}

/// The path of the pod's network namespace, from a verbose PodSandboxStatus (None for
/// a host-network pod).
pub fn sandbox_netns_path(status: &PodSandboxStatusResponse) -> Option<String> {
    let spec = verbose_info(&status.info, "runtimeSpec")?;
    spec.get("linux")?
        .get("namespaces")?
        .as_array()?
        .iter()
        .find(|n| n.get("type").and_then(|t| t.as_str()) == Some("network"))?
        .get("path")?
        .as_str()
        .filter(|p| !p.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_network_and_shared_pid() {
        let mut pod = pod_sandbox_config("p", "ns", "u");
        assert_eq!(pod.hostname, "p");
        set_host_network(&mut pod, true);
        set_share_process_namespace(&mut pod, true);
        let ns = pod_namespace_options(&mut pod).clone();
        assert_eq!(ns.network, NamespaceMode::Node as i32);
        assert_eq!(ns.pid, NamespaceMode::Pod as i32);
        assert_eq!(ns.ipc, NamespaceMode::Pod as i32);
        assert!(pod.hostname.is_empty());
        let c = container_config("c", "img", &["sleep", "1"], &pod);
        let cns = c
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(cns, ns, "containers follow the pod's namespaces");
        assert_eq!(c.log_path, "", "no log directory, no log");
    }

    #[test]
    fn user_namespace_reaches_the_containers() {
        let mut pod = pod_sandbox_config("p", "ns", "u");
        assert_eq!(user_namespace_mappings(&pod), None);
        set_user_namespace(&mut pod, 65536 * 3, 65536);
        let map = vec![IdMapping {
            host_id: 196608,
            container_id: 0,
            length: 65536,
        }];
        assert_eq!(user_namespace_mappings(&pod), Some((map.clone(), map)));
        let ns = pod_namespace_options(&mut pod).clone();
        assert_eq!(ns.network, NamespaceMode::Pod as i32, "the rest unchanged");
        let c = container_config("c", "img", &[], &pod);
        let cns = c.linux.unwrap().security_context.unwrap().namespace_options;
        assert_eq!(cns, Some(ns));
    }

    #[test]
    fn log_path_inside_the_pod_log_directory() {
        let mut pod = pod_sandbox_config("p", "ns", "u");
        pod.log_directory = "/var/log/pods/x".into();
        assert_eq!(
            container_config("web", "img", &[], &pod).log_path,
            "web.log"
        );
    }

    #[test]
    fn verbose_info_fields() {
        let info = HashMap::from([(
            "info".to_string(),
            r#"{"pid":42,"runtimeSpec":{"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/run/netns/cni-1"}]}}}"#
                .to_string(),
        )]);
        let st = PodSandboxStatusResponse {
            info,
            ..Default::default()
        };
        assert_eq!(sandbox_pid(&st), Some(42));
        assert_eq!(sandbox_netns_path(&st).as_deref(), Some("/run/netns/cni-1"));
        assert_eq!(sandbox_pid(&PodSandboxStatusResponse::default()), None);
    }

    #[test]
    fn connect_to_a_missing_socket_is_a_clear_error() {
        let e = Client::connect_with_timeout("/nonexistent/youki-cri.sock", Duration::from_secs(2))
            .err()
            .expect("connecting to a missing socket fails");
        let text = e.to_string();
        assert!(text.contains("/nonexistent/youki-cri.sock"), "{text}");
        assert!(text.contains("No such file or directory"), "{text}");
    }
}
