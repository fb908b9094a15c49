"""The real-client table of docs/conformance.md: every diffusers 0.42.1 / k-diffusion 0.1.1.post1
adapter of tests/clients verified on its objective, at float64 and, where the float64 verdict is
float32 precision or none, at float32 (diffusers computes in float32). Run it from the repository
root: `python tests/clients/table.py` (needs torch, diffusers and k-diffusion; none is a refscore
dependency)."""
import pathlib
import sys
import warnings

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from refscore import conformance  # noqa: E402


def rows():
    """(client, objective, implementation, verify options) for every adapter."""
    import adapters_diffusers as d
    import adapters_kdiffusion as k
    from diffusers import DDIMScheduler, DDPMScheduler, EDMEulerScheduler, EulerDiscreteScheduler
    euler, edm_euler = (d.euler_step(cls, module) for cls, module in ((EulerDiscreteScheduler, "scheduling_euler_discrete"),
                                                                      (EDMEulerScheduler, "scheduling_edm_euler")))
    euler_pipeline_order = d.euler_step(EulerDiscreteScheduler, "scheduling_euler_discrete", at_churned=False)
    return [
        ("DDPMScheduler(beta_schedule=…).betas", "beta_schedule", d.ddpm_beta_schedule, {}),
        ("DDPMScheduler.set_timesteps / previous_timestep", "timesteps", d.timesteps_with(DDPMScheduler), {}),
        ("DDIMScheduler.set_timesteps, t − T//n", "timesteps", d.timesteps_with(DDIMScheduler), {}),
        ("DDPMScheduler._get_variance (fixed_small_log, fixed_large_log)", "ddpm_log_variance",
         d.ddpm_log_variance, {}),
        ("DDPMScheduler.step, fixed_small / fixed_large, clip_sample=False", "ddpm_ancestral_step", d.ddpm_step(), {}),
        ("DDPMScheduler.step, fixed_large_log", "ddpm_ancestral_step", d.ddpm_step("fixed_large_log"),
         {"only": "*large*"}),
        ("DDPMScheduler.step, clip_sample default (True)", "ddpm_ancestral_step", d.ddpm_step(clip_sample=None), {}),
        ("DDIMScheduler.step, clip_sample=False", "ddim_step", d.ddim_step(), {}),
        ("DDIMScheduler.step, clip_sample default (True)", "ddim_step", d.ddim_step(None), {}),
        ("EulerAncestralDiscreteScheduler.step (σ_down, σ_up)", "ancestral_sigmas", d.ancestral_sigmas, {}),
        ("EulerDiscreteScheduler.step (s_churn), D(x̂, σ̂)", "edm_euler_step", euler, {}),
        ("EulerDiscreteScheduler.step (s_churn), D(x, σ) as its pipelines call it", "edm_euler_step",
         euler_pipeline_order, {}),
        ("EDMEulerScheduler.step (s_churn), D(x̂, σ̂) as pred_original_sample", "edm_euler_step", edm_euler, {}),
        ("EDMEulerScheduler.set_timesteps σ's", "edm_schedule", d.edm_schedule(), {}),
        ("EDMEulerScheduler.set_timesteps σ's", "karras_sigma_list", d.edm_schedule(True), {}),
        ("EDMEulerScheduler.precondition_*", "edm_precond", d.edm_precond, {}),
        ("ScoreSdeVeScheduler.step_pred", "reverse_sde_step", d.sde_ve_step_pred, {"only": "*-ve-*"}),
        ("ScoreSdeVeScheduler.step_pred (prev_sample_mean, last σ)", "final_denoise", d.sde_ve_final_denoise, {}),
        ("ScoreSdeVeScheduler.step_correct", "pc_corrector_step", d.sde_ve_step_correct, {}),
        ("ScoreSdeVpScheduler.step_pred", "reverse_sde_step", d.sde_vp_step_pred, {"only": "*-vp-*"}),
        ("k-diffusion get_sigmas_karras", "karras_sigma_list", k.karras(True), {}),
        ("k-diffusion get_sigmas_karras", "edm_schedule", k.karras(), {}),
        ("k-diffusion get_ancestral_step", "ancestral_sigmas", k.ancestral_step, {}),
        ("k-diffusion to_d", "edm_to_d", k.to_d, {}),
        ("k-diffusion Denoiser (probe inner model)", "edm_precond", k.denoiser_precond, {}),
        ("k-diffusion VDenoiser (inner model: the case's v)", "x0_from_v", k.vdenoiser_x0, {}),
        ("k-diffusion DiscreteEpsDDPMDenoiser (inner model: the case's ε̂)", "ddpm_score_from_eps",
         k.discrete_eps_score, {}),
        ("k-diffusion log_likelihood (the case's exact denoiser)", "pf_ode_log_likelihood", k.log_likelihood,
         {"only": "*-ve-*", "rtol": 1e-6, "atol": 1e-8}),
    ]


def verdict(report):
    """passes / the conventions and faults named / 'not named' for one report."""
    if report.passed:
        return "passes"
    names = []
    for row in report.rows:
        if row.passed:
            continue
        found = [f"fault: {f}" for f in row.faults] + [f"convention: {c}" for c in row.conventions]
        names += [n.replace("convention: float32 precision", "precision: float32") for n in found] or ["not named"]
    return "; ".join(dict.fromkeys(names))


def table():
    """Markdown rows: client, objective, float64 verdict, float32 verdict (where run)."""
    import diffusers
    diffusers.utils.logging.set_verbosity_error()
    out = ["| client call | objective | cases | float64 | float32 |", "|---|---|---|---|---|"]
    for name, objective, impl, options in rows():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r64 = conformance.verify(objective, impl, **options)
            v64, v32 = verdict(r64), ""
            if "not named" in v64 or v64 == "precision: float32":
                v32 = verdict(conformance.verify(objective, impl, dtype="float32", **options))
        n = len(r64.rows)
        ok = sum(row.passed for row in r64.rows)
        out.append(f"| {name} | `{objective}` | {ok}/{n} | {v64} | {v32} |")
    return "\n".join(out)


if __name__ == "__main__":
    print(table())
