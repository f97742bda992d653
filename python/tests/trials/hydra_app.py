import sys

import hydra
from omegaconf import DictConfig

import tune_client


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    # cfg is conf/config.yaml with the trial's sampled values (TUNE_CONFIG) applied on top.
    with tune_client.Session.from_env() as session:
        loss = 1.0
        for epoch in range(1, cfg.max_epochs + 1):
            loss *= 1.0 - cfg.optimizer.lr          # stands in for a real epoch of training
            decision = session.report(epoch, {"loss": loss, "hidden": cfg.model.hidden,
                                              "name": cfg.model.name})
            if decision is not tune_client.Decision.CONTINUE:
                break  # no checkpoint: a pause (not under ASHA) ends it like a stop


if __name__ == "__main__":
    sys.argv += tune_client.hydra_overrides()  # TUNE_CONFIG -> ++key=value overrides
    main()
