"""The bugs `make mutants` plants, one at a time, and the tests that must catch each.

Two kinds:
- code mutants: a silent bug where it would hurt most (a lost update, a duplicate cluster, a
  resource left behind, a drift nobody sees, a server open to the network, ...);
- emulator mutants: the emulator made kinder, one per row of docs/pessimistic-emulation.md,
  so that the row's tests are shown to fail when the emulator lets the code off.

Each edit replaces a snippet that must occur exactly once in its file; tests/unit/
test_mutations.py checks that on every CI run, and that each named test exists, so this list
cannot rot silently. Tests are pytest node ids; a `[...]` suffix picks one parameter.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Edit:
    path: str
    old: str
    new: str


@dataclass(frozen=True)
class Mutation:
    name: str
    bug: str  # what goes wrong, silently, if this ships
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]  # these must fail with the bug planted
    row: str | None = None  # the docs/pessimistic-emulation.md row an emulator mutant makes kinder


def one(name: str, bug: str, path: str, old: str, new: str, *tests: str, row: str | None = None) -> Mutation:
    return Mutation(name, bug, (Edit(path, old, new),), tests, row)


API = "tests/function/test_api.py"
CRASH = "tests/deploy/test_crash.py"
DEPLOY_KILL = f"{CRASH}::test_deploy_killed_after_a_call_returned_converges_and_creates_nothing_twice"
DRIFT = "tests/deploy/test_drift.py::test_drift_of_one_field_is_reported_alone_and_deploy_repairs_it"
FIDELITY = "tests/emulator/test_fidelity.py"
PREFLIGHT = "tests/deploy/test_preflight.py"
MIGRATIONS = "tests/deploy/test_migrations.py"
LIMITS = "tests/function/test_limits.py"
DSQL = "taskmgmt_deploy/emulator/dsql.py"
LAMBDA = "taskmgmt_deploy/emulator/awslambda.py"
EVENTS = "taskmgmt_deploy/emulator/events.py"
STAND_IN = "tests/deploy/test_migrations.py"
GUARD = "tests/function/conftest.py"

CODE = [
    one(
        "delete ignores a stale version",
        "DELETE with an old If-Match deletes a task someone changed since",
        "lambda/task_processor/service.py",
        """    current = get_task(conn, task_id, for_update=True)
    if expected_version is not None and current["version"] != expected_version:
        raise VersionConflict(to_json(current))
    sizes""",
        """    current = get_task(conn, task_id, for_update=True)
    sizes""",
        f"{API}::test_a_stale_if_match_is_409_and_changes_nothing[delete]",
        f"{LIMITS}::test_a_delete_with_a_stale_version_deletes_nothing_not_even_history",
    ),
    one(
        "complete ignores a stale version",
        "completing with an old version overwrites a change made since",
        "lambda/task_processor/service.py",
        """    current = get_task(conn, task_id, for_update=True)
    if expected_version is not None and current["version"] != expected_version:
        raise VersionConflict(to_json(current))
    changed""",
        """    current = get_task(conn, task_id, for_update=True)
    changed""",
        f"{API}::test_a_stale_if_match_is_409_and_changes_nothing[complete]",
        f"{API}::test_update_with_a_stale_version_is_409_and_writes_nothing",
    ),
    one(
        "DSQL create sends no client token",
        "a deploy killed after CreateCluster makes a second, orphaned cluster when run again",
        "taskmgmt_deploy/steps/dsql.py",
        "        if ctx.token:  # the same token",
        "        if False:  # the same token",
        f"{DEPLOY_KILL}[CreateCluster primary]",
    ),
    one(
        "a rerun makes a new token",
        "the recorded token is not reused, so a rerun after a crash creates a second cluster",
        "taskmgmt_deploy/core/engine.py",
        "            token = previous.token if reusable else uuid.uuid4().hex",
        "            token = uuid.uuid4().hex",
        f"{DEPLOY_KILL}[CreateCluster secondary]",
    ),
    one(
        "no intent before a create",
        "nothing is recorded before a create, so a crash loses the token and what was being made",
        "taskmgmt_deploy/core/engine.py",
        "engine._record_intent(res, self.position[key], change, observed) if self.executor.records else (None, None)",
        "(None, None)",
        DEPLOY_KILL,
        f"{DEPLOY_KILL}[CreateCluster primary]",
    ),
    one(
        "the manifest is not saved after a step",
        "a crash loses every step done since the last save",
        "taskmgmt_deploy/core/engine.py",
        """        self.manifest.put(record_of(res, position, state, outputs, token))
        return self.manifest.save()""",
        """        self.manifest.put(record_of(res, position, state, outputs, token))
        return lambda: None""",
        DEPLOY_KILL,
    ),
    Mutation(
        "the rule's target has no dead-letter queue",
        "events EventBridge cannot deliver are lost, and status (changed the same way) does not see it",
        (
            Edit(
                "taskmgmt_deploy/steps/events.py",
                """            "RetryPolicy": spec["retry_policy"],
            "DeadLetterConfig": {"Arn": spec["dead_letter_arn"]},
        }""",
                """            "RetryPolicy": spec["retry_policy"],
        }""",
            ),
            Edit(
                "taskmgmt_deploy/steps/events.py",
                """            "retry_policy": spec["retry_policy"],
            "dead_letter_arn": spec["dead_letter_arn"],
        }""",
                """            "retry_policy": spec["retry_policy"],
        }""",
            ),
        ),
        (
            "tests/deploy/test_security.py::test_the_rule_targets_the_function_with_its_dead_letter_queue_and_bounded_retries",
            "tests/deploy/test_security.py::test_an_event_the_function_may_not_take_reaches_the_deployed_dead_letter_queue",
        ),
    ),
    one(
        "destroy's sweep is off",
        "tagged resources the manifest does not know outlive destroy, which says nothing is left",
        "taskmgmt_deploy/core/teardown.py",
        """        if self.finder is None:
            return
        strays""",
        """        if True:
            return
        strays""",
        "tests/deploy/test_teardown.py::test_a_stray_of_every_kind_is_removed_by_one_destroy",
    ),
    one(
        "status ignores the function's environment",
        "a function pointed at another database by hand shows as healthy",
        "taskmgmt_deploy/steps/lambda_fn.py",
        """            "environment": spec["environment"],
            "logging": spec["logging"],""",
        """            "logging": spec["logging"],""",
        f"{DRIFT}[lambda_function]",
    ),
    one(
        "serve listens on every interface",
        "`taskmgmt serve` exposes the deployed API, with the user's credentials, to the network",
        "taskmgmt_deploy/usecases/serve.py",
        'return Server(("127.0.0.1", port), Handler)',
        'return Server(("0.0.0.0", port), Handler)',
        "tests/unit/test_serve.py::test_the_server_listens_on_loopback_only",
    ),
    one(
        "OCC conflicts are not retried",
        "every DSQL conflict (routine under load) becomes an error for the caller",
        "lambda/task_processor/db.py",
        "                if is_retryable(exc):  # rolled back",
        "                if False:  # rolled back",
        "tests/function/test_concurrency.py::test_a_serialization_failure_is_retried_and_succeeds",
    ),
    one(
        "the function connects at READ COMMITTED",
        "tests on PostgreSQL stop seeing the conflicts DSQL (repeatable read only) raises",
        "lambda/task_processor/db.py",
        "conn.isolation_level = IsolationLevel.REPEATABLE_READ",
        "conn.isolation_level = IsolationLevel.READ_COMMITTED",
        "tests/function/test_concurrency.py::test_sixteen_writer_processes_on_one_task_retry_conflicts_on_their_own_connections",
        row="Q5",
    ),
    one(
        "the role may connect to any cluster",
        "the function's role can open any DSQL cluster in the account",
        "taskmgmt_deploy/stack/blueprint.py",
        '"Action": "dsql:DbConnect", "Resource": clusters}',
        '"Action": "dsql:DbConnect", "Resource": "*"}',
        "tests/deploy/test_security.py::test_the_function_role_is_least_privilege",
    ),
    one(
        "the log group keeps logs for ever",
        "retention is never set: logs (and their cost) grow without end",
        "taskmgmt_deploy/steps/logs.py",
        '        logs.put_retention_policy(logGroupName=res.name, retentionInDays=spec["retention_days"])\n',
        "",
        "tests/deploy/test_deploy.py::test_deploy_status_destroy_leaves_nothing",
    ),
    one(
        "the lock does not exclude",
        "two deploys of one environment run at once and overwrite each other's manifest",
        "taskmgmt_deploy/core/lock.py",
        """                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = parse_lock(_read_fd(fd))""",
        """                pass
            except BlockingIOError:
                holder = parse_lock(_read_fd(fd))""",
        "tests/deploy/test_lifecycle.py::test_a_second_run_is_refused_while_the_lock_is_held",
    ),
    one(
        "events are applied again",
        "a task event EventBridge delivers twice (it may) is applied twice",
        "lambda/task_processor/app.py",
        "            if not service.claim_event(conn, event_id, kind):",
        "            if False:",
        "tests/function/test_events.py::test_the_same_event_delivered_twice_makes_one_task",
    ),
    one(
        "an update that changes nothing notifies",
        "subscribers hear of changes that did not happen",
        "lambda/task_processor/app.py",
        "        if changed:\n            observability.count",
        "        if True:\n            observability.count",
        f"{API}::test_an_update_that_changes_nothing_keeps_the_version",
    ),
    one(
        "a refused notification counts as sent",
        "PutEvents answers 200 with FailedEntryCount; the lost notification is neither logged nor counted",
        "lambda/task_processor/notify.py",
        '        if response.get("FailedEntryCount"):',
        "        if False:",
        "tests/function/test_events.py::test_a_failed_notification_is_counted_and_the_change_kept",
    ),
    one(
        "a refused target counts as put",
        "PutTargets answers 200 with FailedEntryCount; the rule then invokes nothing",
        "taskmgmt_deploy/steps/events.py",
        '    if response.get("FailedEntryCount"):',
        "    if False:",
        "tests/deploy/test_faults.py::test_put_targets_that_answers_200_but_refuses_its_entry_fails_the_deploy",
    ),
    one(
        "destroy ignores dependencies",
        "destroy deletes a bus before its rule (or a role before its policy) and fails half-way",
        "taskmgmt_deploy/core/teardown.py",
        "self.scheduler.walk(order, _dependents(targets), _DeleteWork(self, targets, force, report))",
        "self.scheduler.walk(order[::-1], {}, _DeleteWork(self, targets, force, report))",
        "tests/unit/test_engine.py::test_destroy_deletes_dependents_first_and_removes_manifest",
    ),
    one(
        "protection off on one cluster only",
        "a forced destroy of a protected pair gets stuck: AWS refuses to change a cluster whose peer is PENDING_DELETE",
        "taskmgmt_deploy/steps/dsql.py",
        """        for dsql, identifier in protected:
            _turn_protection_off(dsql, identifier, ctx)""",
        """        for dsql, identifier in protected[:1]:
            _turn_protection_off(dsql, identifier, ctx)""",
        "tests/deploy/test_dsql.py::test_destroy_turns_protection_off_on_both_before_deleting_either",
    ),
    one(
        "IAM propagation is not retried",
        "every first deploy fails: Lambda cannot assume a role created seconds ago",
        "taskmgmt_deploy/steps/lambda_fn.py",
        '    return call_with_retry(busy_retried, is_iam_propagation, "iam_propagation", ctx.clock, ctx.progress)',
        "    return busy_retried()",
        "tests/deploy/test_lifecycle.py::test_deploy_absorbs_iam_propagation_with_a_dense_retry",
    ),
    one(
        "no wait before a configuration update",
        "a deploy right after another update hits ResourceConflictException and retries blindly",
        "taskmgmt_deploy/steps/lambda_fn.py",
        """        if any(f in diff for f in CONFIG_FIELDS):
            wait_settled(lam, res.name, ctx)""",
        """        if any(f in diff for f in CONFIG_FIELDS):""",
        "tests/deploy/test_faults.py::test_deploy_waits_while_another_update_is_in_progress",
    ),
    one(
        "prod is not protected",
        "a production database can be deleted without --force",
        "taskmgmt_deploy/stack/blueprint.py",
        '    common = {"witness_region": stack.witness_region, "deletion_protection": stack.deletion_protection}',
        '    common = {"witness_region": stack.witness_region, "deletion_protection": False}',
        "tests/deploy/test_lifecycle.py::test_destroy_of_a_protected_environment_changes_nothing_without_force",
    ),
    one(
        "DSQL's rejected SQL passes the check",
        "a migration DSQL rejects (SERIAL, a trigger, ...) is found only on AWS, half-applied",
        "taskmgmt_deploy/database/sqlfiles.py",
        "    found = [why for pattern, why in REJECTED if re.search(pattern, statement, re.IGNORECASE)]",
        "    found = []",
        f"{MIGRATIONS}::test_the_check_refuses_what_dsql_rejects",
        row="Q10",
    ),
    one(
        "history batches not bounded in bytes",
        "deleting a task with large history exceeds DSQL's 10 MiB a transaction, and fails on every retry",
        "lambda/task_processor/service.py",
        "HISTORY_BATCH_BYTES = 4 * 1024 * 1024",
        "HISTORY_BATCH_BYTES = 64 * 1024 * 1024",
        f"{LIMITS}::test_large_history_rows_are_deleted_in_batches_of_at_most_4_mib",
        row="Q2",
    ),
    one(
        "connections kept past the hour",
        "DSQL closes the function's connection at 60 minutes, in the middle of a request",
        "lambda/task_processor/db.py",
        "MAX_CONNECTION_AGE = 50 * 60.0",
        "MAX_CONNECTION_AGE = 2 * 60 * 60.0",
        "tests/function/test_concurrency.py::test_the_connection_is_reused_and_recycled_when_old",
        row="Q11",
    ),
    one(
        "a dropped connection is not reopened",
        "after DSQL drops a connection, every request fails until the function is recycled",
        "lambda/task_processor/db.py",
        "                if reconnected:\n",
        "                if True:\n",
        "tests/function/test_concurrency.py::test_a_connection_dropped_between_invocations_is_reopened",
        row="Q11",
    ),
]


def kinder(row: str, path: str, old: str, new: str, *tests: str) -> Mutation:
    return Mutation(f"{row} made kinder", f"row {row} no longer holds", (Edit(path, old, new),), tests, row)


EMULATOR = [
    kinder(
        "D1",
        DSQL,
        "        if not state.witness:\n",
        "        if True:\n",
        f"{FIDELITY}::test_dsql_first_cluster_waits_in_pending_setup_until_peered",
    ),
    kinder(
        "D2",
        DSQL,
        '            cluster._status = "UPDATING"',
        "            pass",
        f"{FIDELITY}::test_dsql_create_answers_updating_while_the_cluster_is_pending_setup",
    ),
    kinder(
        "D3",
        DSQL,
        "        cluster.endpoint = state.endpoint if state.activated and state.status in SERVING else None",
        "        cluster.endpoint = state.endpoint",
        f"{FIDELITY}::test_dsql_reports_no_endpoint_until_the_cluster_is_active",
        "tests/deploy/test_dsql.py::test_deploy_derives_the_endpoint_of_a_cluster_that_does_not_report_one",
    ),
    kinder(
        "D4",
        DSQL,
        '            endpoint=f"{cluster.identifier}.dsql.{backend.region_name}.on.aws",',
        '            endpoint=f"{cluster.identifier}.{backend.region_name}.on.aws",',
        f"{FIDELITY}::test_dsql_endpoint_has_the_documented_form",
    ),
    kinder(
        "D5",
        DSQL,
        '"clusters": sorted({cluster.arn, *state.peers})}',
        '"clusters": sorted(state.peers)}',
        f"{FIDELITY}::test_dsql_lists_the_cluster_itself_among_its_clusters",
    ),
    kinder(
        "D7",
        DSQL,
        '            self._set(cluster, "UPDATING", self.update_seconds, "ACTIVE")',
        "            pass",
        f"{FIDELITY}::test_dsql_update_leaves_the_cluster_updating_for_a_while",
    ),
    kinder(
        "D8",
        DSQL,
        "        if state.status in BUSY:",
        "        if False:",
        f"{FIDELITY}::test_dsql_refuses_any_change_while_one_is_in_progress",
    ),
    kinder(
        "D9",
        DSQL,
        "        if cluster.deletion_protection_enabled:",
        "        if False:",
        f"{FIDELITY}::test_dsql_refuses_to_delete_a_protected_cluster_like_aws",
    ),
    kinder(
        "D10",
        DSQL,
        "        if alive and self._peered(cluster.arn):",
        "        if False:",
        f"{FIDELITY}::test_dsql_delete_of_one_peer_waits_in_pending_delete_for_the_other",
    ),
    kinder(
        "D11",
        DSQL,
        "        if state.status in LEAVING:",
        "        if False:",
        f"{FIDELITY}::test_dsql_refuses_to_change_a_cluster_whose_delete_was_requested",
    ),
    kinder(
        "D12",
        DSQL,
        "            if leaving:",
        "            if False:",
        f"{FIDELITY}::test_dsql_refuses_to_change_a_cluster_whose_peer_is_pending_delete",
        "tests/deploy/test_dsql.py::test_destroy_turns_protection_off_on_both_before_deleting_either",
    ),
    kinder(
        "D13",
        DSQL,
        "            if not _same_set(region, witness):",
        "            if False:",
        f"{FIDELITY}::test_dsql_rejects_a_witness_outside_the_region_set",
    ),
    kinder(
        "D14",
        DSQL,
        "            if self._cluster(peer) is None:",
        "            if False:",
        f"{FIDELITY}::test_dsql_rejects_a_peer_that_does_not_exist",
    ),
    kinder(
        "D15",
        DSQL,
        "                if c.arn not in self.states or now - self.states[c.arn].created >= self.listing_seconds",
        "                if True",
        f"{FIDELITY}::test_dsql_lists_a_new_cluster_only_after_a_while_and_its_token_returns_it",
    ),
    kinder(
        "L1",
        LAMBDA,
        '        self._mark_busy(fn, "create")',
        "        pass",
        f"{FIDELITY}::test_a_new_function_is_pending_and_refuses_updates_until_active",
    ),
    kinder(
        "L2",
        LAMBDA,
        """        original(backend, function_name, qualifier, body)
        with self.lock:
            self._store_logging(fn, body.get("LoggingConfig"))
        self._mark_busy(fn, "update")""",
        """        original(backend, function_name, qualifier, body)
        with self.lock:
            self._store_logging(fn, body.get("LoggingConfig"))""",
        f"{FIDELITY}::test_a_new_function_is_pending_and_refuses_updates_until_active",
    ),
    kinder(
        "L3",
        LAMBDA,
        "        if reserved:",
        "        if False:",
        f"{FIDELITY}::test_lambda_rejects_reserved_environment_keys",
    ),
    kinder(
        "L4",
        LAMBDA,
        "        if runtime is not None and runtime not in RUNTIMES:",
        "        if False:",
        f"{FIDELITY}::test_lambda_rejects_a_runtime_it_does_not_offer",
    ),
    kinder(
        "L5",
        LAMBDA,
        '        if sid and any(s.get("Sid") == sid for s in fn.policy.statements):',
        "        if False:",
        f"{FIDELITY}::test_lambda_refuses_a_duplicate_permission_statement_id",
    ),
    kinder(
        "L6",
        LAMBDA,
        '        if destination and destination.split(":")[2] == "sqs":',
        "        if False:",
        f"{FIDELITY}::test_on_failure_destination_needs_the_role_to_allow_sending",
    ),
    kinder(
        "L7",
        LAMBDA,
        '        code.pop("Tags", None)',
        "        pass",
        f"{FIDELITY}::test_get_function_returns_no_tags_but_list_tags_does",
    ),
    kinder(
        "L8",
        LAMBDA,
        '                config["LoggingConfig"] = dict(self.logging[fn.function_arn])',
        "                pass",
        f"{FIDELITY}::test_lambda_keeps_the_logging_config",
    ),
    kinder(
        "L9",
        EVENTS,
        "        attempts = 1 + _max_retries(fn)",
        "        attempts = 1",
        f"{FIDELITY}::test_a_function_that_raises_is_retried_then_its_event_goes_to_the_on_failure_queue",
    ),
    kinder(
        "I1",
        "taskmgmt_deploy/emulator/iam.py",
        "        return self._settled(self.role_created, role_arn)",
        "        return True",
        f"{FIDELITY}::test_a_new_role_cannot_be_assumed_until_it_propagates",
        "tests/deploy/test_lifecycle.py::test_deploy_absorbs_iam_propagation_with_a_dense_retry",
    ),
    kinder(
        "I2",
        "taskmgmt_deploy/emulator/iam.py",
        "        return self._settled(self.policy_changed, role_arn)",
        "        return True",
        f"{FIDELITY}::test_on_failure_destination_needs_the_role_to_allow_sending",
    ),
    kinder(
        "I3",
        "taskmgmt_deploy/emulator/iam.py",
        "        if policy.attachment_count > 0:",
        "        if False:",
        f"{FIDELITY}::test_iam_refuses_to_delete_an_attached_policy",
    ),
    kinder(
        "E1",
        EVENTS,
        '        if rule.state == "DISABLED" or self._propagating(rule)',
        "        if self._propagating(rule)",
        f"{FIDELITY}::test_a_disabled_rule_delivers_nothing",
    ),
    kinder(
        "E2",
        EVENTS,
        "        return changed is not None and self.clock.now() - changed < self.rule_propagation",
        "        return False",
        f"{FIDELITY}::test_a_rule_just_put_or_enabled_matches_no_event_yet",
        "tests/unit/test_smoke.py::test_a_lost_event_is_sent_again_until_the_task_appears",
    ),
    kinder(
        "E3",
        EVENTS,
        "        if fn is None or not _permits(fn, rule.arn):",
        "        if fn is None:",
        f"{FIDELITY}::test_events_without_permission_for_their_rule_end_in_the_target_dlq",
    ),
    kinder(
        "E4",
        EVENTS,
        "            if dead_letters and _queue_permits(dead_letters, rule.arn):",
        "            if dead_letters:",
        f"{FIDELITY}::test_a_dead_letter_queue_receives_nothing_unless_its_policy_lets_the_rule_send",
    ),
    kinder(
        "E5",
        EVENTS,
        "        if bus is not None and bus.rules:",
        "        if False:",
        f"{FIDELITY}::test_a_bus_with_rules_cannot_be_deleted",
    ),
    kinder(
        "C1",
        "taskmgmt_deploy/emulator/cloudwatch.py",
        "        return cloudwatch_backends[backend.account_id][self.HOME]",
        "        return backend",
        f"{FIDELITY}::test_dashboards_are_global",
    ),
    kinder(
        "C2",
        "taskmgmt_deploy/emulator/cloudwatch.py",
        "        if problems:",
        "        if False:",
        f"{FIDELITY}::test_alarm_parameters_are_validated",
    ),
    kinder(
        "G1",
        "taskmgmt_deploy/emulator/logs.py",
        "        if int(retention_in_days) not in RETENTION_DAYS:",
        "        if False:",
        f"{FIDELITY}::test_log_retention_must_be_an_allowed_value",
    ),
    kinder(
        "G2",
        "taskmgmt_deploy/emulator/logs.py",
        "            if group is None:\n                return\n",
        "            if group is None:\n"
        "                backend.create_log_group(group_name, {})\n"
        "                group = backend.groups[group_name]\n",
        "tests/deploy/test_logs.py::test_the_sandbox_sends_a_functions_output_only_to_a_log_group_that_exists",
    ),
    kinder(
        "S1",
        "taskmgmt_deploy/emulator/sqs.py",
        "        if when is not None and self.clock.now() - when < QUEUE_NAME_REUSE_SECONDS:",
        "        if False:",
        f"{FIDELITY}::test_a_deleted_queue_name_cannot_be_reused_for_60_seconds",
    ),
    kinder(
        "S2",
        "taskmgmt_deploy/emulator/sqs.py",
        '        return f"https://sqs.{queue.region}.amazonaws.com/{queue.account_id}/{queue.name}"',
        "        return original(queue, request_url)",
        f"{FIDELITY}::test_a_queue_url_names_its_region_whatever_endpoint_was_called",
    ),
    kinder(
        "Q12",
        DSQL,
        "                for gone in leaving:",
        "                for gone in []:",
        f"{FIDELITY}::test_dsql_a_pair_shares_storage_made_with_it_and_released_with_its_last_cluster",
        "tests/sandbox/test_databases.py::test_each_pair_is_its_own_database_made_and_dropped_with_its_clusters",
    ),
    kinder(
        "Q1",
        GUARD,
        "        if self.mutated > ROW_LIMIT:",
        "        if False:",
        f"{LIMITS}::test_the_guard_fails_a_transaction_over_3000_rows_and_54000_is_final",
        f"{LIMITS}::test_a_task_with_5000_history_rows_is_deleted_in_batches_and_nothing_is_left",
    ),
    kinder(
        "Q3",
        GUARD,
        "            raise psycopg.errors.ProgramLimitExceeded(message)",
        "            raise psycopg.errors.SerializationFailure(message)",
        f"{LIMITS}::test_the_guard_fails_a_transaction_over_3000_rows_and_54000_is_final",
    ),
    kinder(
        "Q4",
        GUARD,
        "            self.adapters.register_loader(name, TextLoader)",
        "            pass",
        f"{LIMITS}::test_the_stand_in_driver_returns_json_as_text",
    ),
    kinder(
        "Q6",
        STAND_IN,
        "        if job.polls_left > 0:",
        "        if False:",
        f"{MIGRATIONS}::test_each_index_job_is_polled_in_short_statements_until_it_completes",
    ),
    kinder(
        "Q7",
        STAND_IN,
        '        if "wait_for_job" in text:',
        "        if False:",
        f"{MIGRATIONS}::test_the_stand_in_refuses_a_wait_inside_a_statement",
    ),
    kinder(
        "Q8",
        STAND_IN,
        '        if kinds.count("ddl") > 1 or ("ddl" in kinds and "dml" in kinds):',
        "        if False:",
        f"{MIGRATIONS}::test_the_stand_in_refuses_two_ddl_statements_or_ddl_with_dml_in_one_transaction",
    ),
    kinder(
        "Q9",
        STAND_IN,
        '        if text.startswith("CREATE") and self.stand_in.conflicts:',
        "        if False:",
        f"{MIGRATIONS}::test_dsql_conflicts_during_migration_are_retried",
    ),
]

# The guard rails' rows (the emulator of SNS, KMS, alarm actions and evaluation, DSQL policies
# and quota, Lambda concurrency, IAM simulation, regions and quotas).
GUARD_RAILS = "tests/emulator/test_guard_rail_fidelity.py"
CLOUDWATCH = "taskmgmt_deploy/emulator/cloudwatch.py"
SNS = "taskmgmt_deploy/emulator/sns.py"

EMULATOR += [
    kinder(
        "D20",
        DSQL,
        "                if state is not None and state.status not in SETTLED:",
        "                if False:",
        f"{GUARD_RAILS}::test_a_cluster_policy_is_refused_until_the_cluster_is_active",
    ),
    kinder(
        "D21",
        DSQL,
        "                _check_policy(cluster, policy)\n",
        "",
        f"{GUARD_RAILS}::test_a_cluster_policy_is_validated",
    ),
    kinder(
        "D22",
        DSQL,
        "        if len(live) >= self.multi_region_quota:",
        "        if False:",
        f"{GUARD_RAILS}::test_the_multi_region_cluster_quota_is_enforced_per_region",
    ),
    kinder(
        "D23",
        DSQL,
        '        return None if name == "tags" else getattr(self._cluster, name)',
        "        return getattr(self._cluster, name)",
        f"{FIDELITY}::test_dsql_get_cluster_answers_without_tags_which_list_tags_for_resource_gives",
    ),
    kinder(
        "L20",
        LAMBDA,
        "        if self.concurrency_limit - others - int(reserved) < UNRESERVED_MINIMUM:",
        "        if False:",
        f"{GUARD_RAILS}::test_lambda_keeps_100_of_the_account_concurrency_unreserved",
    ),
    kinder(
        "L21",
        LAMBDA,
        '"UnreservedConcurrentExecutions": self.concurrency_limit - reserved,',
        '"UnreservedConcurrentExecutions": self.concurrency_limit,',
        f"{GUARD_RAILS}::test_lambda_keeps_100_of_the_account_concurrency_unreserved",
    ),
    kinder(
        "I10",
        "taskmgmt_deploy/emulator/iam.py",
        '"EvalDecision": decide(documents, Request(action, resource, principal, context)),',
        '"EvalDecision": "allowed",',
        f"{GUARD_RAILS}::test_simulate_principal_policy_evaluates_the_principals_own_policies",
    ),
    kinder(
        "I11",
        "taskmgmt_deploy/emulator/iam.py",
        '            if decide(principal_documents(iam, caller.arn) or [], asked) != "allowed":',
        "            if False:",
        f"{GUARD_RAILS}::test_a_user_simulates_only_with_its_own_permission_to",
    ),
    kinder(
        "C10",
        CLOUDWATCH,
        r'            if not (action.startswith(wanted) and re.fullmatch(r"[\w-]{1,256}", action[len(wanted) :])):',
        "            if False:",
        f"{GUARD_RAILS}::test_alarm_actions_are_topics_of_the_alarms_own_account_and_region",
    ),
    kinder(
        "C11",
        CLOUDWATCH,
        "        return problems + _queries_problems(kwargs, queries)",
        "        return problems",
        f"{GUARD_RAILS}::test_metric_math_and_percentile_alarms_are_validated",
    ),
    kinder(
        "C12",
        CLOUDWATCH,
        """        if previous is None:  # a new alarm has no data yet; an updated one keeps its state
            alarm.update_state("Unchecked: Initial alarm creation", "{}", "INSUFFICIENT_DATA")
        else:
            alarm.state_value, alarm.state_reason = previous.state_value, previous.state_reason
""",
        "",
        f"{GUARD_RAILS}::test_a_new_alarm_has_insufficient_data_and_an_updated_one_keeps_its_state",
    ),
    kinder(
        "C13",
        CLOUDWATCH,
        "                        if state != alarm.state_value:",
        "                        if False:",
        f"{GUARD_RAILS}::test_evaluating_metric_data_changes_states_and_runs_the_actions",
    ),
    kinder(
        "G10",
        "taskmgmt_deploy/emulator/logs.py",
        "def _check_key(backend: LogsBackend, key: str) -> None:\n",
        "def _check_key(backend: LogsBackend, key: str) -> None:\n    return\n",
        f"{GUARD_RAILS}::test_a_log_group_takes_a_key_by_arn_whose_policy_lets_logs_use_it",
    ),
    kinder(
        "N1",
        SNS,
        "        if known is None and protocol in CONFIRMED_BY_LINK:",
        "        if False:",
        f"{GUARD_RAILS}::test_an_email_subscription_is_pending_until_confirmed_and_gets_nothing_meanwhile",
    ),
    kinder(
        "N2",
        SNS,
        "        if topic.kms_master_key_id:",
        "        if False:",
        f"{GUARD_RAILS}::test_alarms_cannot_publish_to_a_topic_encrypted_with_the_aws_managed_key",
    ),
    kinder(
        "N3",
        "taskmgmt_deploy/emulator/kms.py",
        '    if key.key_state != "Enabled":',
        "    if False:",
        f"{GUARD_RAILS}::test_alarms_reach_an_encrypted_topic_only_if_cloudwatch_may_use_its_key",
    ),
    kinder(
        "N4",
        SNS,
        "        if not allowed([topic._policy_json], request):",
        "        if False:",
        f"{GUARD_RAILS}::test_alarms_reach_a_topic_only_if_its_policy_lets_cloudwatch_publish_for_them",
    ),
    kinder(
        "K1",
        "taskmgmt_deploy/emulator/kms.py",
        '            backend.keys[key_id].key_manager = "AWS"',
        "            pass",
        f"{GUARD_RAILS}::test_a_predefined_alias_names_an_aws_managed_key",
    ),
    kinder(
        "K2",
        DSQL,
        '        problem = usable_by(account, region, key_id, "dsql.amazonaws.com", ())',
        '        problem = None if find_key(account, region, key_id) else f"no key {key_id}"',
        f"{GUARD_RAILS}::test_dsql_takes_only_a_usable_customer_key_of_its_region_and_reports_its_arn",
    ),
    kinder(
        "A1",
        "taskmgmt_deploy/emulator/account.py",
        '        default = "DISABLED" if region in OPT_IN else "ENABLED_BY_DEFAULT"',
        '        default = "ENABLED_BY_DEFAULT"',
        f"{GUARD_RAILS}::test_regions_that_need_opting_in_are_disabled",
    ),
    kinder(
        "A2",
        "taskmgmt_deploy/emulator/account.py",
        '        if code == "dsql":',
        "        if False:",
        f"{GUARD_RAILS}::test_the_multi_region_cluster_quota_is_enforced_per_region",
    ),
    kinder(
        "M1",
        "taskmgmt_deploy/emulator/alarms.py",
        "        if d.namespace == namespace and d.name == name and _pairs(d.dimensions) == dimensions",
        "        if d.namespace == namespace and d.name == name and {v for _, v in _pairs(d.dimensions)} == "
        "{v for _, v in dimensions}",
        f"{GUARD_RAILS}::test_an_alarm_reads_its_metric_under_its_own_dimension_and_a_percentile_is_not_the_maximum",
    ),
    kinder(
        "M2",
        "taskmgmt_deploy/emulator/alarms.py",
        "        rank = max(1, math.ceil(float(stat[1:]) / 100 * len(ordered)))",
        "        rank = len(ordered)",
        f"{GUARD_RAILS}::test_an_alarm_reads_its_metric_under_its_own_dimension_and_a_percentile_is_not_the_maximum",
    ),
]

S3_FIDELITY = "taskmgmt_deploy/emulator/s3.py"
S3_ROWS = "tests/emulator/test_s3_fidelity.py"
S3_STATE = "tests/deploy/test_s3_state.py"

EMULATOR += [
    kinder(
        "T1",
        S3_FIDELITY,
        "            if recent:\n                return CONFLICT",
        "            if False:\n                return CONFLICT",
        f"{S3_ROWS}::test_a_failed_condition_soon_after_a_change_is_a_409_conflict_later_a_412",
    ),
    kinder(
        "T2",
        S3_FIDELITY,
        """        if condition and condition != "*" and not _quoted(condition):""",
        "        if False:",
        f"{S3_ROWS}::test_if_match_takes_the_etag_only_as_s3_returned_it",
    ),
    kinder(
        "T3",
        S3_FIDELITY,
        "        return versions[::-1], prefixes, markers[::-1], next_key, next_version",
        "        return versions, prefixes, markers, next_key, next_version",
        f"{S3_ROWS}::test_versions_come_two_a_page_in_no_promised_order",
    ),
    kinder(
        "T4",
        S3_FIDELITY,
        "        if bucket_name not in backend.buckets and owner is not None and owner[1] != backend.account_id:",
        "        if False:",
        f"{S3_ROWS}::test_a_bucket_of_another_account_refuses_every_call",
        f"{S3_STATE}::test_a_bucket_of_another_account_is_one_line_and_exit_2",
    ),
]

CODE += [
    one(
        "tags taken from GetCluster alone",
        "GetCluster may answer without tags: a cluster created before a crash is not found, and a second is made",
        "taskmgmt_deploy/aws/finder.py",
        '    if "tags" in cluster:\n        return dict(cluster["tags"] or {})',
        '    if True:\n        return dict(cluster.get("tags") or {})',
        f"{PREFLIGHT}::test_the_stacks_own_cluster_does_not_count_against_the_quota_even_when_get_cluster_omits_tags",
    ),
    one(
        "the state in S3 is written unconditionally",
        "a run overwrites the manifest another run wrote meanwhile: the other run's resources are forgotten",
        "taskmgmt_deploy/aws/s3state.py",
        """        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}""",
        """        condition = {}""",
        f"{S3_STATE}::test_a_write_after_another_run_changed_the_state_stops_and_loses_nothing",
    ),
    one(
        "the lease never runs out",
        "a run that died holding the S3 lock blocks every other run until someone finds `unlock`",
        "taskmgmt_deploy/aws/s3state.py",
        "        return holder.expires_at is not None and _epoch(holder.expires_at) <= self.clock.wall()",
        "        return False",
        f"{S3_STATE}::test_a_second_run_is_refused_while_the_lease_runs_and_takes_over_once_it_has_passed",
    ),
]

GATEWAY = "taskmgmt_deploy/emulator/apigateway.py"
GATEWAY_ROWS = "tests/emulator/test_apigateway_fidelity.py"
APIS = "taskmgmt_deploy/steps/apigateway.py"

EMULATOR += [
    kinder(
        "H1",
        GATEWAY,
        """ and route_key != "$connect" and authorization not in (None, "NONE"):""",
        " and False:",
        f"{GATEWAY_ROWS}::test_a_websocket_api_is_authorized_at_connect_only",
    ),
    kinder(
        "H2",
        GATEWAY,
        """        if kwargs.get("authorizer_type") == "JWT":""",
        "        if False:",
        f"{GATEWAY_ROWS}::test_a_jwt_authorizer_is_for_http_apis_with_an_issuer_an_audience_and_a_token_source",
    ),
    kinder(
        "H3",
        GATEWAY,
        "    if logs:\n        _check_destination(backend, logs)",
        "    if False:\n        _check_destination(backend, logs)",
        f"{GATEWAY_ROWS}::test_access_logs_go_to_an_existing_log_group_named_by_its_arn_without_the_star",
    ),
    kinder(
        "H4",
        GATEWAY,
        "PAGE = 5  #",
        "PAGE = 1000  #",
        f"{GATEWAY_ROWS}::test_lists_come_in_pages_of_five_and_update_stage_changes_only_what_it_names",
    ),
    kinder(
        "H5",
        GATEWAY,
        """    for name, value in (config.get("stageVariables") or {}).items():""",
        "    for name, value in {}.items():",
        f"{GATEWAY_ROWS}::test_stage_variables_take_only_the_documented_characters",
    ),
]

CODE += [
    one(
        "an API found again by its id alone",
        "a deploy that died after CreateApi answered makes a second API of the same name when run again",
        APIS,
        """        api = api or self._find(gw, res.name, res.spec.get("tags", {}).get("taskmgmt:key"))""",
        "        api = api",
        f"{DEPLOY_KILL}[CreateTopic > CreateApi http > CreateStage websocket]",
    ),
    one(
        "the APIs' invoke permission open to every API of the account",
        "any API Gateway API in the account and region may invoke the function",
        APIS,
        """                SourceArn=f"{outputs['execution_arn']}/*",""",
        """                SourceArn=outputs["execution_arn"].rsplit(":", 1)[0] + ":*/*",""",
        f"{DRIFT}[lambda_permission]",
    ),
]

# Rows with nothing to make kinder, and why. (Q2 and Q11 have no stand-in behaviour either:
# their code mutants above show that the rows' tests bite.)
NOTHING_TO_MAKE_KINDER = {
    "D6": "the botocore model's UpdateClusterOutput has only those four fields, so the client drops anything "
    "more an emulator could answer; its status UPDATING is D7's, made kinder there",
}


GATEWAY = "taskmgmt_deploy/emulator/gateway"
GATEWAY_ROWS = "tests/sandbox/test_gateway.py"

EMULATOR += [
    kinder(
        "W1",
        f"{GATEWAY}/plane.py",
        "        api.api_endpoint = self._listen(api)  # W1",
        "        self._listen(api)",
        f"{GATEWAY_ROWS}::test_api_endpoint_is_a_loopback_port_of_its_own_for_each_api",
    ),
    kinder(
        "W2",
        f"{GATEWAY}/auth.py",
        """    if not hmac.compare_digest(expected, match["signature"]):""",
        "    if False:",
        f"{GATEWAY_ROWS}::test_iam_routes_need_a_valid_sigv4_signature_for_this_api",
    ),
    kinder(
        "W3",
        f"{GATEWAY}/auth.py",
        "    if not set(map(str, given)) & set(audiences):",
        "    if False:",
        f"{GATEWAY_ROWS}::test_jwt_routes_take_only_a_valid_token_of_the_issuer_for_the_audience",
    ),
    kinder(
        "W4",
        f"{GATEWAY}/http_api.py",
        "        is_text = content_type.startswith(TEXT_TYPES)",
        "        is_text = True",
        f"{GATEWAY_ROWS}::test_a_body_that_is_not_text_reaches_the_function_base64_encoded",
    ),
    kinder(
        "W5",
        f"{GATEWAY}/integration.py",
        "    if not allows(\n",
        "    if False and not allows(\n",
        f"{GATEWAY_ROWS}::test_without_the_invoke_permission_the_api_answers_500_and_the_function_never_runs",
    ),
    kinder(
        "W6",
        f"{GATEWAY}/http_api.py",
        """        for key in [k for k in response.headers if k.lower().startswith("access-control-")]:
            del response.headers[key]
""",
        "",
        f"{GATEWAY_ROWS}::test_cors_preflight_is_answered_by_the_api_and_the_functions_cors_headers_dropped",
    ),
    kinder(
        "W7",
        f"{GATEWAY}/websocket_api.py",
        "FRAME_LIMIT = 32 * 1024",
        "FRAME_LIMIT = 1024 * 1024",
        f"{GATEWAY_ROWS}::test_the_management_api_needs_a_signature_and_refuses_oversized_posts",
        f"{GATEWAY_ROWS}::test_a_frame_over_32_kb_from_the_client_closes_the_connection",
    ),
    kinder(
        "W8",
        f"{GATEWAY}/websocket_api.py",
        "IDLE_SECONDS = 600.0",
        "IDLE_SECONDS = 1e9",
        f"{GATEWAY_ROWS}::test_idle_connections_close_after_10_minutes_and_every_connection_after_2_hours",
    ),
    kinder(
        "W9",
        f"{GATEWAY}/websocket_api.py",
        """conn.state != "open":  # W9""",
        """conn.state == "closed":  # W9""",
        f"{GATEWAY_ROWS}::test_connect_refused_or_unsigned_opens_no_socket_and_a_post_during_connect_is_gone",
    ),
    kinder(
        "W10",
        f"{GATEWAY}/websocket_api.py",
        "        if reply is not None and _two_way(route):",
        "        if reply is not None:",
        f"{GATEWAY_ROWS}::test_a_route_answers_the_client_only_with_a_route_response",
    ),
    kinder(
        "W11",
        f"{GATEWAY}/http_api.py",
        "        if not self.throttle.allow((api.api_id, stage.name), burst, rate):",
        "        if False:",
        f"{GATEWAY_ROWS}::test_default_route_throttling_answers_429_past_the_burst",
    ),
    kinder(
        "W12",
        f"{GATEWAY}/access_logs.py",
        "            group = backend.groups.get(group_name)\n"
        "            if group is None:\n                return False\n",
        "            if group_name not in backend.groups:\n                backend.create_log_group(group_name, {})\n"
        "            group = backend.groups[group_name]\n",
        f"{GATEWAY_ROWS}::test_an_http_api_writes_its_access_log_only_to_a_log_group_that_exists",
    ),
    Mutation(  # each connection's messages handled one after the other, in the order sent
        "W13 made kinder",
        "row W13 no longer holds",
        (
            Edit(
                f"{GATEWAY}/websocket_api.py",
                "        self._spawn(self._message(api, conn, message))",
                '        conn.__dict__["tail"] = asyncio.ensure_future(\n'
                '            _in_order(conn.__dict__.get("tail"), self._message(api, conn, message))\n'
                "        )",
            ),
            Edit(
                f"{GATEWAY}/websocket_api.py",
                "def _iso(wall: float) -> str:",
                "async def _in_order(previous, coroutine):\n"
                "    if previous is not None:\n"
                "        await previous\n"
                "    await coroutine\n\n\n"
                "def _iso(wall: float) -> str:",
            ),
        ),
        (f"{GATEWAY_ROWS}::test_the_messages_of_one_connection_are_handled_at_once_in_no_promised_order",),
        "W13",
    ),
]

LIVE = "tests/function/test_broadcast.py"
TOKENS = "tests/function/test_tokens.py"

CODE += [
    one(
        "a gone connection is kept",
        "every broadcast posts again to connections that answered 410 Gone, and the table only grows",
        "lambda/task_processor/broadcast.py",
        "            if outcome == GONE:\n",
        "            if False:\n",
        f"{LIVE}::test_a_gone_connection_is_deleted_a_failing_one_kept_and_expired_ones_skipped_and_deleted",
    ),
    one(
        "expired connections are posted to",
        "rows whose $disconnect never came are posted to for ever and never deleted",
        "lambda/task_processor/broadcast.py",
        "                if subscriber.expired:\n",
        "                if False:\n",
        f"{LIVE}::test_a_gone_connection_is_deleted_a_failing_one_kept_and_expired_ones_skipped_and_deleted",
    ),
    one(
        "only the first page of subscribers is read",
        "past the first page of subscribers nobody hears of a change",
        "lambda/task_processor/broadcast.py",
        "            if len(page) < subscriptions.READ_BATCH:\n",
        "            if True:\n",
        f"{LIVE}::test_subscribers_are_read_in_pages_and_gone_ones_deleted_in_batches",
    ),
    one(
        "the fan-out posts one connection at a time",
        "one slow or dead connection delays every other subscriber's update",
        "lambda/task_processor/management.py",
        "ThreadPoolExecutor(max_workers=self.workers,",
        "ThreadPoolExecutor(max_workers=1,",
        f"{LIVE}::test_a_slow_connection_does_not_delay_the_others",
        f"{LIVE}::test_the_pool_is_bounded",
    ),
    one(
        "a post on a dropped connection is not retried",
        "a kept-alive connection the endpoint closed meanwhile loses the message it was about to carry",
        "lambda/task_processor/management.py",
        '                if attempt == 2:\n                    raise PostFailed("ConnectionError")',
        '                if True:\n                    raise PostFailed("ConnectionError")',
        "tests/function/test_management.py::test_gone_failed_and_retried_posts",
    ),
    one(
        "the token's signature is not checked",
        "anyone can connect to the WebSocket API with a token they wrote themselves",
        "lambda/task_processor/tokens.py",
        '        if not rsa_sha256_verify(key[0], key[1], f"{header_part}.{payload_part}".encode("ascii"), signature):',
        "        if False:",
        f"{TOKENS}::test_a_forged_or_malformed_token_is_refused",
    ),
    one(
        "the token's audience is not checked",
        "a token the issuer made for another application opens a socket here",
        "lambda/task_processor/tokens.py",
        "        if not any(isinstance(a, str) and a in self.audiences for a in audiences):",
        "        if False:",
        f"{TOKENS}::test_claims_are_checked_as_the_jwt_authorizer_checks_them",
    ),
]

MUTATIONS = CODE + EMULATOR
