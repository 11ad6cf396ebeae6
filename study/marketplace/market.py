"""The marketplace: one object that holds its data layer, keys, clock and test hooks, and the
table from each Requester API operation to the role module that answers it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from study.marketplace import (
    assignments,
    bonuses,
    hits,
    money,
    notifications,
    qualification_requests,
    qualifications,
    requester_workers,
    sweeps,
)
from study.marketplace.datastore import Account, Store
from study.marketplace.ids import new_id as random_id

OPERATIONS: dict[str, Callable] = {
    "CreateHITType": hits.create_hit_type,
    "CreateHIT": hits.create_hit,
    "CreateHITWithHITType": hits.create_hit_with_hit_type,
    "GetHIT": hits.get_hit,
    "ListHITs": hits.list_hits,
    "ListReviewableHITs": hits.list_reviewable_hits,
    "UpdateExpirationForHIT": hits.update_expiration_for_hit,
    "UpdateHITReviewStatus": hits.update_hit_review_status,
    "UpdateHITTypeOfHIT": hits.update_hit_type_of_hit,
    "DeleteHIT": hits.delete_hit,
    "ListAssignmentsForHIT": assignments.list_assignments_for_hit,
    "GetAssignment": assignments.get_assignment,
    "ApproveAssignment": assignments.approve_assignment,
    "RejectAssignment": assignments.reject_assignment,
    "SendBonus": bonuses.send_bonus,
    "ListBonusPayments": bonuses.list_bonus_payments,
    "CreateAdditionalAssignmentsForHIT": hits.create_additional_assignments_for_hit,
    "CreateQualificationType": qualifications.create_qualification_type,
    "GetQualificationType": qualifications.get_qualification_type,
    "UpdateQualificationType": qualifications.update_qualification_type,
    "ListQualificationTypes": qualifications.list_qualification_types,
    "AssociateQualificationWithWorker": qualifications.associate_qualification_with_worker,
    "DisassociateQualificationFromWorker": qualifications.disassociate_qualification_from_worker,
    "GetQualificationScore": qualifications.get_qualification_score,
    "ListWorkersWithQualificationType": qualifications.list_workers_with_qualification_type,
    "CreateWorkerBlock": requester_workers.create_worker_block,
    "DeleteWorkerBlock": requester_workers.delete_worker_block,
    "ListWorkerBlocks": requester_workers.list_worker_blocks,
    "NotifyWorkers": requester_workers.notify_workers,
    "GetAccountBalance": money.get_account_balance,
    "DeleteQualificationType": qualifications.delete_qualification_type,
    "ListHITsForQualificationType": qualifications.list_hits_for_qualification_type,
    "ListQualificationRequests": qualification_requests.list_qualification_requests,
    "AcceptQualificationRequest": qualification_requests.accept_qualification_request,
    "RejectQualificationRequest": qualification_requests.reject_qualification_request,
    "ListReviewPolicyResultsForHIT": hits.list_review_policy_results_for_hit,
    "GetFileUploadURL": assignments.get_file_upload_url,
    "UpdateNotificationSettings": notifications.update_notification_settings,
    "SendTestEventNotification": notifications.send_test_event_notification,
}


class Market:
    """The marketplace over one SQLite file; thread-safe (one connection per thread)."""

    def __init__(self, db_path: str | Path, keys: dict[str, str] | None = None,
                 clock: Callable[[], float] | None = None, throttle=None, faults=None,
                 live_balance: str | None = None, aws: dict | None = None,
                 new_id: Callable[..., str] | None = None):
        self.db_path = str(db_path)
        self.store = Store(self.db_path, money.parse_cents(live_balance) if live_balance else 0)
        self.pool = self.store.pool
        self.keys = dict(keys or {})
        self.clock = clock or time.time
        # Where new HIT, HIT type, qualification, assignment and worker ids come from (a
        # simulation that must repeat itself injects a seeded source).
        self.new_id = new_id or random_id
        self.throttle = throttle
        self.faults = faults
        # boto3 client settings for notification destinations (endpoint_url, region, keys).
        self.aws = dict(aws or {})
        self.cookie_secret = self.store.meta("cookie_secret")
        self._accounts: set[Account] = set()

    def now(self) -> float:
        return float(self.clock())

    def sweep(self, realm: str) -> None:
        sweeps.sweep(self, realm)

    def call(self, operation: str, realm: str, key_id: str, params: dict) -> dict:
        """Answer one Requester API operation for the requester `key_id` (raises
        RequestError). Each key is its own requester, with an account made on first use."""
        acct = Account(realm, key_id)
        if acct not in self._accounts:
            self.store.open_account(acct)
            self._accounts.add(acct)
        return OPERATIONS[operation](self, acct, params)
