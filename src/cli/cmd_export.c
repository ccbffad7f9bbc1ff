/* cmd_export.c: sp export: a checkpoint's weights stored as float16, for committing (the training
 * state dropped; nn/nn_train.h nn_checkpoint_to_f16). */
#include <stdio.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/log.h"
#include "models/model.h"
#include "nn/nn_train.h"

int sp_cmd_export(int argc, char **argv) {
  const char *in = NULL, *out = NULL;
  sp_arg rows[] = {{"ckpt", SP_ARG_STR, &in, "checkpoint of sp train (model.safetensors: the EMA weights)"},
                   {"out", SP_ARG_STR, &out, "the float16 copy (written atomically)"},
                   {0}};
  int rc = sp_args_parse("export", "--ckpt IN.safetensors --out OUT.safetensors", rows, argc, argv, NULL, 0, NULL);
  if (rc) return rc < 0 ? 2 : 0;
  if (!in || !out) {
    sp_log(SP_LOG_ERROR, "export: --ckpt and --out are required");
    return 2;
  }
  char err[SP_ERRLEN];
  sp_ckpt_info info;
  if (sp_ckpt_info_read(in, &info, err) || nn_checkpoint_to_f16(in, out, err)) {
    sp_log(SP_LOG_ERROR, "export: %s", err);
    return 1;
  }
  printf("export: %s (%s, step %ld) -> %s (float16)\n", in, info.model, info.step, out);
  sp_ckpt_info_free(&info);
  return 0;
}
