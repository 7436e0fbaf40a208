//! The shipped Kubernetes manifests (`deploy/kubernetes/sync-job.yaml`) hold what an Indexed
//! Job needs for `ferry sync --shard auto`: `completionMode: Indexed`, completions and
//! parallelism, the completion index reaching the container, the shard count equal to the
//! completions, the config from the ConfigMap (a valid sync config) at the path ferry is given,
//! and the registry Secret mounted as a docker `config.json` where DOCKER_CONFIG points.

use ferry::sync::SyncPlan;
use serde_json::Value;

fn docs() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/sync-job.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---\n")
        .map(|doc| {
            let node = marked_yaml::parse_yaml(0, doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
            marked_yaml::from_node::<Value>(&node).unwrap()
        })
        .collect()
}

/// YAML scalars arrive as strings.
fn int(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("{s} is not a number")),
        v => v.as_u64().unwrap_or_else(|| panic!("{v} is not a number")),
    }
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no env {name}"))
}

/// Checks one Job spec (the Job's, or the CronJob's jobTemplate's).
fn check_indexed_job(spec: &Value, config_map: &Value) {
    assert_eq!(spec["completionMode"], "Indexed", "{spec}");
    let completions = int(&spec["completions"]);
    assert!(completions > 1, "a single completion is not sharded");
    assert!((1..=completions).contains(&int(&spec["parallelism"])));
    let pod = &spec["template"]["spec"];
    assert!(["Never", "OnFailure"].contains(&pod["restartPolicy"].as_str().unwrap()));
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "sync");
    let at = args.iter().position(|a| *a == "--shard").expect("--shard");
    assert_eq!(args[at + 1], "auto");
    let index = &env(c, "JOB_COMPLETION_INDEX")["valueFrom"]["fieldRef"]["fieldPath"];
    assert_eq!(
        index,
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
    assert_eq!(
        int(&env(c, "FERRY_SHARD_COUNT")["value"]),
        completions,
        "shard count = completions"
    );

    let volumes = pod["volumes"].as_array().unwrap();
    let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap();
    let mounts = c["volumeMounts"].as_array().unwrap();
    // The config file ferry is given comes from the ConfigMap.
    let config_path = args[1];
    let m = mounts
        .iter()
        .find(|m| m["mountPath"] == config_path)
        .expect("config mounted");
    let v = volume(m["name"].as_str().unwrap());
    assert_eq!(v["configMap"]["name"], config_map["metadata"]["name"]);
    let key = m["subPath"].as_str().unwrap();
    let text = config_map["data"][key]
        .as_str()
        .expect("the key is in the ConfigMap");
    SyncPlan::parse(key, text).expect("the shipped config is a valid sync config");
    // The Secret is a docker config.json where DOCKER_CONFIG points.
    let dir = env(c, "DOCKER_CONFIG")["value"].as_str().unwrap();
    let m = mounts
        .iter()
        .find(|m| m["mountPath"] == dir)
        .expect("DOCKER_CONFIG mounted");
    let secret = &volume(m["name"].as_str().unwrap())["secret"];
    assert!(secret["secretName"].is_string());
    let items = secret["items"].as_array().unwrap();
    assert_eq!(items[0]["key"], ".dockerconfigjson");
    assert_eq!(items[0]["path"], "config.json");
}

#[test]
fn the_kubernetes_job_and_cronjob_run_sharded_syncs() {
    let docs = docs();
    let config_map = kind(&docs, "ConfigMap");
    check_indexed_job(&kind(&docs, "Job")["spec"], config_map);
    let cron = kind(&docs, "CronJob");
    assert!(cron["spec"]["schedule"].is_string());
    assert_eq!(
        cron["spec"]["concurrencyPolicy"], "Forbid",
        "two nightly runs never overlap"
    );
    check_indexed_job(&cron["spec"]["jobTemplate"]["spec"], config_map);
}

#[test]
fn the_check_catches_a_job_that_is_not_indexed() {
    let docs = docs();
    let mut job = kind(&docs, "Job")["spec"].clone();
    job["completionMode"] = Value::String("NonIndexed".into());
    let config_map = kind(&docs, "ConfigMap").clone();
    let r = std::panic::catch_unwind(|| check_indexed_job(&job, &config_map));
    assert!(r.is_err());
}
