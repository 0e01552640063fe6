"""nbgrader's submit step with submissions that other trainees cannot read.

nbgrader's own submit step leaves each submission world-readable (files 0644 in
a folder 0777) and hides it only behind an unlistable inbound folder and a
random name. This one removes every permission of other users, so only the
trainee who submitted and the instructors can read a submission, even when its
name is known.

The instructors read through the group: the inbound folder has the setgid bit
and the group ``medkit-instructors``, which every file of a submission must
inherit. Two things would break that, and this class avoids both: nbgrader
copies the submission with :func:`shutil.copytree`, whose ``chmod`` of each new
folder clears the setgid bit (the trainee is not in the group), and it writes
``timestamp.txt`` after that copy.
"""

from __future__ import annotations

import os
import shutil
import stat

from nbgrader.exchange.default.submit import ExchangeSubmit
from nbgrader.utils import ignore_patterns

OTHERS = stat.S_IRWXO
SUBMISSION_DIR_MODE = 0o770
"""Owner and instructors may read, write and delete; other users nothing."""


class PrivateExchangeSubmit(ExchangeSubmit):
    """Submit an assignment readable only by its owner and the instructors."""

    def init_dest(self) -> None:
        super().init_dest()
        if not os.stat(self.inbound_path).st_mode & stat.S_ISGID:
            self.fail(
                f"The inbound folder {self.inbound_path} lacks the setgid bit, so "
                f"the instructors could not read this submission; ask them to run "
                f"'chmod 2733 {self.inbound_path}'."
            )

    def do_copy(self, src: str, dest: str, log: object = None) -> None:
        """Copy like nbgrader does, but leave each new folder's mode as created."""
        if self.coursedir.groupshared:
            super().do_copy(src, dest, log)
            return
        size = self.get_size(src)
        maximum = 1000 * self.coursedir.max_dir_size  # max_dir_size is in kB
        if size > maximum:
            raise RuntimeError(
                f"The folder {src} contains {size} bytes, more than the maximum of "
                f"{maximum}; remove large files from it and submit again."
            )
        ignore = ignore_patterns(
            exclude=self.coursedir.ignore,
            include=self.coursedir.include,
            max_file_size=self.coursedir.max_file_size,
            log=self.log,
        )
        _copy_tree(src, dest, ignore)

    def set_perms(self, dest: str, fileperms: int, dirperms: int) -> None:
        # nbgrader's submit calls this once, on the new submission folder.
        super().set_perms(dest, fileperms & ~OTHERS, dirperms & ~OTHERS)

    def copy_files(self) -> None:
        super().copy_files()
        # nbgrader then opens the submission folder to every user so that the
        # instructor may delete it; the instructors' group is enough for that.
        dest = os.path.join(self.inbound_path, self.assignment_filename)
        os.chmod(dest, SUBMISSION_DIR_MODE)


def _copy_tree(src: str, dest: str, ignore) -> None:
    """Copy files with their modes and times; folders keep the mode mkdir gives."""
    os.mkdir(dest)
    names = os.listdir(src)
    ignored = ignore(src, names)
    for name in names:
        if name in ignored:
            continue
        source = os.path.join(src, name)
        target = os.path.join(dest, name)
        if os.path.isdir(source):
            _copy_tree(source, target, ignore)
        else:
            shutil.copy2(source, target)
