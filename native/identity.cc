/*
 * Dropping privilege, in the one order that works (capabilities(7)):
 *
 *   set_securebits       needs CAP_SETPCAP, so first
 *   drop_bounding_caps   needs CAP_SETPCAP, so before set_uid
 *   set_groups, set_gid  need CAP_SETGID, so before set_uid
 *   set_uid              after this we hold no capability
 *   drop_caps            clears what uid 0 (if asked for) would keep
 *   set_no_new_privs     execve can never add privilege again
 *   set_pdeathsig again  set_uid cleared it (prctl(2)); re-arm and re-check
 *
 * With hostIds 'unique' all of this happens inside the sandbox's user
 * namespace (set_userns came just before, userns.cc): the capabilities are
 * that namespace's, and the uid and gid are its ids, mapped to the leased
 * host ones. Joining it reset the securebits and the bounding set, which is
 * why they are set here and not earlier.
 */
#include <linux/capability.h>
#include <linux/prctl.h>
#include <linux/securebits.h>

#include "config.h"
#include "sys.h"

void child_identity(const struct child_config *cfg) {
  /*
   * set_securebits: NOROOT means uid 0 gains no capabilities on execve;
   * NO_SETUID_FIXUP stays off, so set_uid still clears our sets; KEEP_CAPS
   * stays off; NO_CAP_AMBIENT_RAISE refuses PR_CAP_AMBIENT_RAISE, so no
   * capability can be made to survive an execve through the ambient set
   * (capabilities(7), "Ambient capability set"). Locking all four makes them
   * permanent for the sandbox and everything it starts.
   */
  long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
              SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  long r = SYS5(__NR_prctl, PR_SET_SECUREBITS, bits, 0, 0, 0);
  if (sys_failed(r)) child_fail(cfg, STEP_set_securebits, r, "PR_SET_SECUREBITS");
  child_trace(cfg, STEP_set_securebits, -1);

  /*
   * drop_bounding_caps: the bounding set limits what any later execve can
   * grant, file capabilities included; an empty one means never again.
   */
  for (int cap = 0; cap <= cfg->last_cap; cap++) {
    r = SYS5(__NR_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0);
    if (sys_failed(r)) child_fail(cfg, STEP_drop_bounding_caps, r, "PR_CAPBSET_DROP");
  }
  child_trace(cfg, STEP_drop_bounding_caps, -1);

  /*
   * set_groups: root's supplementary groups must not follow us in (setgroups(2)).
   * Rootless with one id mapped, setgroups is denied in our user namespace
   * (map_user_ids) and the caller's groups cannot be dropped: the step is
   * skipped (docs/security.md). With a subordinate range newgidmap leaves
   * setgroups allowed, so they are dropped as with root.
   */
  if (!cfg->rootless || cfg->map_socket >= 0) {
    r = SYS2(__NR_setgroups, 0, 0);
    if (sys_failed(r)) child_fail(cfg, STEP_set_groups, r, "setgroups");
    child_trace(cfg, STEP_set_groups, -1);
  }
  /* set_gid before set_uid: once we are not root we may not change groups. */
  r = SYS3(__NR_setresgid, cfg->gid, cfg->gid, cfg->gid);
  if (sys_failed(r)) child_fail(cfg, STEP_set_gid, r, "setresgid");
  child_trace(cfg, STEP_set_gid, -1);
  /* set_uid: real, effective and saved, so there is no way back (setresuid(2)). */
  r = SYS3(__NR_setresuid, cfg->uid, cfg->uid, cfg->uid);
  if (sys_failed(r)) child_fail(cfg, STEP_set_uid, r, "setresuid");
  child_trace(cfg, STEP_set_uid, -1);

  /*
   * drop_caps: for a non-zero uid the kernel already cleared the permitted
   * and effective sets; clear all of them explicitly, inheritable and
   * ambient too, so the result does not depend on the uid asked for.
   */
  r = SYS5(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (sys_failed(r)) child_fail(cfg, STEP_drop_caps, r, "PR_CAP_AMBIENT_CLEAR_ALL");
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {{0, 0, 0}, {0, 0, 0}};
  r = SYS2(__NR_capset, &hdr, data);
  if (sys_failed(r)) child_fail(cfg, STEP_drop_caps, r, "capset");
  child_trace(cfg, STEP_drop_caps, -1);

  /*
   * set_no_new_privs: set-user-ID bits and file capabilities are ignored by
   * every later execve, and seccomp filters may be loaded without privilege
   * (PR_SET_NO_NEW_PRIVS(2const)).
   */
  r = SYS5(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  if (sys_failed(r)) child_fail(cfg, STEP_set_no_new_privs, r, "PR_SET_NO_NEW_PRIVS");
  child_trace(cfg, STEP_set_no_new_privs, -1);

  /* The credential change above disarmed the parent-death signal: arm it for good. (signals.cc) */
  child_arm_pdeathsig(cfg, CAPSULE_FD_PARENT);
}
